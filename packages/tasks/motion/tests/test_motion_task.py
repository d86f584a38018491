"""The motion task: masked diffusion on VQ codes of the embedded data, in-betweening, lengths, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from motion_fixtures import CODES, SMALL, cache, data, tiny_task, vqvae_dir  # noqa: F401 (fixtures)
from unidit.tasks.motion.datamodule import MotionData
from unidit.tasks.motion.task import Inbetween, MotionTask, pad_codes
from unidit.training.masked_task import MaskedSamplingOptions

def masked_loss(task: MotionTask, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
    inputs = task.token_inputs(batch)
    context, context_mask = task.encode_captions(inputs.captions)
    return task.objective().loss(lambda x, t: task.denoiser(x, t, context, context_mask, inputs.valid),
                                 inputs.codes, inputs.valid, inputs.given, generator=generator)


def test_codes_are_cached_and_counted(data, vqvae_dir, cache):
    codes = data.codes["train"]
    assert len(codes) == len(data.splits["train"].clips) >= SMALL.num_train - 2
    assert all(c.dtype == torch.long and len(c) >= 4 for c in codes)
    clip = data.splits["train"].clips[0]
    assert len(codes[0]) == len(clip.features) // 4
    again = MotionData(seed=SMALL.seed, num_train=SMALL.num_train, num_val=SMALL.num_val, num_test=SMALL.num_test,
                       vqvae_dir=vqvae_dir, cache_dir=str(cache))
    again.setup("fit")  # read back from the code cache
    assert all(torch.equal(a, b) for a, b in zip(codes, again.codes["train"]))
    counts = data.code_counts(CODES)
    assert counts.shape == (CODES,) and int(counts.sum()) == sum(len(c) for c in codes)
    batch = next(iter(data.train_dataloader()))
    assert len(batch["codes"]) == 8 and all(isinstance(c, str) for c in batch["captions"])


@pytest.mark.parametrize("schedule", ["priority", "cosine"])
def test_masked_diffusion_loss_falls_on_the_embedded_codes(data, vqvae_dir, schedule):
    task = tiny_task(vqvae_dir, data, schedule=schedule, inbetween_prob=0.2, continuation_prob=0.2)
    batches = list(data.train_dataloader())[:2]
    optimizer = torch.optim.AdamW(task.denoiser.parameters(), lr=3e-3)

    def held_out() -> float:
        task.eval()
        with torch.no_grad():
            value = sum(float(masked_loss(task, b, torch.Generator().manual_seed(1))) for b in batches) / len(batches)
        task.train()
        return value

    before = held_out()
    assert before > 0.8 * np.log(CODES)  # a fresh head predicts uniform codes
    task.train()
    for step in range(20):
        loss = task.training_step(batches[step % 2], step)  # masked CE + length CE, in-betweening mixed in
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert held_out() < 0.75 * before


def test_inbetweening_and_continuation_keep_given_codes_exactly(data, vqvae_dir):
    task = tiny_task(vqvae_dir, data)
    torch.nn.init.normal_(task.denoiser.head.weight, std=0.5)  # an opinionated (untrained) model
    clip = data.splits["val"].clips[0].features  # (T, 263)
    codes = task.encode_features([clip])[0]  # (N,)
    n = len(codes)
    given = torch.ones(n, dtype=torch.bool)
    given[n // 3 : 2 * n // 3] = False  # in-betweening: the middle third is generated
    prefix = torch.arange(n) < n // 2  # continuation: the first half is given
    options = MaskedSamplingOptions(steps=5, cfg_scale=2.0, top_k=8, seed=3)
    out = task.sample_codes(["a person walks forward.", "someone jumps twice."], known=[codes, codes],
                            given=[given, prefix], options=options)
    assert torch.equal(out[0][given], codes[given]) and torch.equal(out[1][prefix], codes[prefix])
    assert not torch.equal(out[0], codes)  # the span is generated, not copied
    again = task.sample_codes(["a person walks forward.", "someone jumps twice."], known=[codes, codes],
                              given=[given, prefix], options=options)
    assert all(torch.equal(a, b) for a, b in zip(out, again))  # seeded

    seconds = len(clip) / 20.0
    motions = task.sample_motion(["a person waves."], inbetween=Inbetween(clip, 0.3 * seconds, 0.6 * seconds),
                                 options=options)
    assert motions[0].shape == (4 * n, 263) and np.isfinite(motions[0]).all()
    continued = task.sample_motion(["a person waves."], seconds=2.0, continuation=clip[:40], options=options)
    assert continued[0].shape == (40 + 40, 263)


def test_lengths_from_text_or_duration(vqvae_dir):
    task = tiny_task(vqvae_dir, schedule="cosine")
    assert task.tokens_for(2.0) == 10 and task.tokens_for(0.01) == 1 and task.tokens_for(100.0) == 49
    options = MaskedSamplingOptions(steps=4, cfg_scale=1.0)
    motions = task.sample_motion(["a person sits down.", "someone turns left."], seconds=[1.0, 3.0], options=options)
    assert [m.shape for m in motions] == [(20, 263), (60, 263)]
    predicted = task.predict_lengths(["a person sits down."])
    assert 1 <= predicted[0] <= 49
    assert len(task.sample_motion(["a person sits down."], options=options)[0]) == 4 * predicted[0]


def test_bad_inputs_get_clear_errors(vqvae_dir):
    task = tiny_task(vqvae_dir)
    with pytest.raises(ValueError, match=r"clip 0: expected motion features \(T, 263\)"):
        task.encode_features([np.zeros((40, 251), np.float32)])
    with pytest.raises(ValueError, match="walk.npy: 3 frames is shorter than one code"):
        task.encode_features([np.zeros((3, 263), np.float32)], ["walk.npy"])
    nan = np.zeros((8, 263), np.float32)
    nan[2, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        task.encode_features([nan])
    with pytest.raises(ValueError, match="shorter than one code"):
        pad_codes([torch.zeros(0, dtype=torch.long)])
    with pytest.raises(ValueError, match="seconds"):
        task.sample_motion(["a person jumps."], seconds=0.0)
    with pytest.raises(ValueError, match="in-betweening span"):
        task.sample_motion(["a person jumps."], inbetween=Inbetween(np.zeros((40, 263), np.float32), 1.5, 3.0))
    with pytest.raises(ValueError, match="tokens: expected ids in"):
        task.denoiser(torch.full((1, 4), CODES + 1), torch.ones(1))
    with pytest.raises(ValueError, match="model.codebook_size is 512"):
        MotionTask(vqvae=vqvae_dir, preset="tiny")
    with pytest.raises(ValueError, match="set_code_counts|set_importance"):
        tiny_task(None).sample_codes(["a person jumps."], [4], options=MaskedSamplingOptions(cfg_scale=1.0))
    with pytest.raises(ValueError, match="data.source"):
        MotionData(source="amass").folder()


def test_export_keeps_the_priority_table_and_samples_alike(data, vqvae_dir, tmp_path):
    from unidit.training.export import export_task, load_task

    task = tiny_task(vqvae_dir, data)
    torch.nn.init.normal_(task.denoiser.head.weight, std=0.5)
    task.ensure_ema().network.load_state_dict(task.denoiser.state_dict())
    loaded = load_task(MotionTask, export_task(task, tmp_path / "model"))
    assert loaded.has_code_importance
    assert torch.equal(loaded.sampling_network().code_importance, task.denoiser.code_importance)
    options = MaskedSamplingOptions(steps=4, seed=1)
    a = task.sample_codes(["a person kicks once."], [12], options=options)
    b = loaded.sample_codes(["a person kicks once."], [12], options=options)
    assert torch.equal(a[0], b[0])
