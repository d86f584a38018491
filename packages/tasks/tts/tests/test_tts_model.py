"""The TTS denoiser and TTSTask: losses fall, prompts stay exact, durations, bad text."""

from __future__ import annotations

import pytest
import torch
from unidit.tasks.tts.frontend import Line
from unidit.tasks.tts.task import TTSTask
from unidit.tasks.tts.text import TextTokenizer
from unidit.training.sampling import SamplingOptions

TEXTS = ["The old boat moved slowly.", "Anna found seven keys!", "Where is the quiet river?",
         "Peter painted a small green door."]
VOICES = ["low", "high"]


pytestmark = pytest.mark.usefixtures("one_thread")  # the fixture is in the repository's conftest.py


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tokenizer")
    TextTokenizer.train(TEXTS, kind="char", vocab_size=64).save(folder)
    return str(folder)


def tiny_task(tokenizer: str, **options) -> TTSTask:
    torch.manual_seed(0)
    options = {"preset": "tiny", "patch_size": 2, "text_dim": 32, "text_layers": 1, "text_heads": 2,
               "warmup_steps": 1, "lr": 3e-3, **options}
    task = TTSTask(tokenizer=tokenizer, speakers=VOICES, **options)
    task.setup("fit")
    return task


def tiny_batch() -> dict:
    """Three utterances whose length follows their text (about 14 characters a second)."""
    g = torch.Generator().manual_seed(0)
    lines = [Line(TEXTS[0], "low"), Line(TEXTS[1], "high"), Line(TEXTS[3], None)]
    seconds = torch.tensor([len(line.text) / 14.0 for line in lines])
    frames = [int(s * 12) // 2 * 2 for s in seconds]  # short stand-ins for 50 latent frames a second
    latents = [torch.randn(16, n, generator=g) * 0.5 + k for k, n in enumerate(frames)]
    return {"latents": latents, "lines": lines, "seconds": seconds}


def losses_of(task: TTSTask, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    inputs = task.flow_inputs(batch)
    context, mask = task.encode_captions(inputs.captions)
    flow = task.flow.loss(lambda x, t: task.denoiser(x, t, context, mask), inputs.x0, mask=inputs.mask,
                          cond=inputs.cond, generator=generator)
    return {"flow": flow, **task.duration_loss(batch)}


def test_flow_loss_and_both_duration_losses_fall(tokenizer_dir):
    task = tiny_task(tokenizer_dir, prompt_prob=0.3, speaker_dropout=0.2)
    batch = tiny_batch()
    optimizer = torch.optim.AdamW(task.denoiser.parameters(), lr=3e-3)

    def held_out() -> dict[str, float]:
        with torch.no_grad():
            task.eval()
            values = {k: float(v) for k, v in losses_of(task, batch, torch.Generator().manual_seed(1)).items()}
            task.train()
        return values

    before = held_out()
    task.train()
    for _ in range(30):
        losses = losses_of(task, batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    after = held_out()
    assert after["flow"] < 0.7 * before["flow"], (before, after)
    for name in ("sentence", "tokens"):  # each predictor fits the three durations
        assert after[name] < 0.2 * before[name], (name, before, after)


def test_prompt_latents_come_out_bit_identical(tokenizer_dir):
    task = tiny_task(tokenizer_dir, filler_text=True, backbone={"arch": "mmdit"})
    with torch.no_grad():  # a fresh head writes zero velocity; make the network do something
        for p in task.denoiser.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    prompt = torch.randn(16, 6, generator=torch.Generator().manual_seed(3))  # (C, Tp)
    options = SamplingOptions(steps=3, sampler="heun", cfg_scale=2.0, cfg_rescale=0.5, sway=-1.0)
    latents = task.sample_latents([Line(TEXTS[2], "low"), Line(TEXTS[0], None)], [8, 4], options=options,
                                  prompt=prompt, prompt_text=TEXTS[1], use_ema=False)
    assert [tuple(z.shape) for z in latents] == [(16, 14), (16, 10)]
    for z in latents:
        assert torch.equal(z[:, :6], prompt)  # held at t = 0 through every step
        assert torch.isfinite(z).all() and z[:, 6:].std() > 0.1  # the rest was generated


def test_durations_follow_seconds_speed_and_the_prompt_rate(tokenizer_dir):
    task = tiny_task(tokenizer_dir)
    task.denoiser.duration.calibrate(1.0, -2.5)
    task.ema = None
    task.setup("fit")  # the EMA copy, which samples, starts from the calibrated network
    lines = [Line(TEXTS[0], "low"), Line(TEXTS[1], "high")]
    predicted = task.predict_seconds(lines)
    assert torch.allclose(predicted, torch.full((2,), torch.e))  # a fresh head predicts the prior
    assert task.plan_seconds(lines, None, None, speed=2.0) == pytest.approx((predicted / 2).tolist())
    assert task.plan_seconds(lines, [1.0, 3.0], None, speed=0.5) == [2.0, 6.0]
    with pytest.raises(ValueError, match="speed"):
        task.plan_seconds(lines, None, None, speed=0.0)


@pytest.mark.parametrize("text, message", [("", "empty"), ("   ", "empty"), ("@@ ## €€", "none of the characters")])
def test_bad_text_and_voices_are_refused(tokenizer_dir, text, message):
    task = tiny_task(tokenizer_dir)
    with pytest.raises(ValueError, match=message):
        task.encode_captions([Line(text, "low")])
    with pytest.raises(ValueError, match="unknown voice 'nobody'.*low, high"):
        task.encode_captions([Line(TEXTS[0], "nobody")])


def test_sway_is_a_sampling_option_checked_like_the_others():
    assert SamplingOptions(sway=-1.0).sway == -1.0 and SamplingOptions().sway is None
    with pytest.raises(ValueError, match="sway"):
        SamplingOptions(sway=-1.5)
