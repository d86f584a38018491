"""The latent denoiser and T2ATask: training, padding, in-painting, continuation, CFG rescale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from unidit.backbones.guidance import cfg_combine
from unidit.tasks.t2a.denoiser import PAD_TIME
from unidit.tasks.t2a.task import Inpaint, T2ATask
from unidit.tokenizers.audio_vae import AudioVAE, audio_vae_config
from unidit.training.latent_codec import encode_clips
from unidit.training.sampling import SamplingOptions

CAPTIONS = ["a loud high beep, twice", "a quiet low hum", "a fast loud high siren"]


def tiny_task(vae: str | None = None, **options) -> T2ATask:
    torch.manual_seed(0)
    options = {"preset": "tiny", "patch_size": 2, "warmup_steps": 1, "lr": 3e-3, **options}
    task = T2ATask(vae=vae, **options)
    task.setup("fit")
    return task


def loss_of(task: T2ATask, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
    inputs = task.flow_inputs(batch)
    context, context_mask = task.encode_captions(inputs.captions)
    return task.flow.loss(lambda x, t: task.denoiser(x, t, context, context_mask), inputs.x0,
                          mask=inputs.mask, cond=inputs.cond, generator=generator)


@pytest.fixture(scope="module")
def tiny_vae_dir(tmp_path_factory) -> str:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vae") / "model"
    AudioVAE(audio_vae_config("tiny")).save_pretrained(folder)
    return str(folder)


def test_tiny_model_learns_a_tiny_set_of_variable_lengths():
    task = tiny_task(inpaint_prob=0.2, continuation_prob=0.2)
    g = torch.Generator().manual_seed(0)
    batch = {"latents": [torch.randn(16, n, generator=g) * 0.5 + k for k, n in enumerate((24, 11, 16))],
             "captions": CAPTIONS}
    optimizer = torch.optim.AdamW(task.denoiser.parameters(), lr=3e-3)

    def held_out_loss() -> float:
        with torch.no_grad():
            task.eval()
            value = float(loss_of(task, batch, torch.Generator().manual_seed(1)))
            task.train()
        return value

    before = held_out_loss()
    task.train()
    for _ in range(40):
        loss = loss_of(task, batch)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert held_out_loss() < 0.8 * before


def test_padding_does_not_change_a_sample():
    """A clip's velocity is the same alone and in a batch padded for a longer clip."""
    task = tiny_task()
    torch.nn.init.normal_(task.denoiser.head.weight, std=0.02)  # non-zero outputs
    short, long = torch.randn(16, 10), torch.randn(16, 30)
    context, context_mask = task.encode_captions(CAPTIONS[:2])
    alone = task.denoiser.pack([short])
    both = task.denoiser.pack([short, long])
    assert both.tokens.shape[1] == 15 and not bool(both.key_mask[0, 5:].any())
    t_alone = torch.full((1, 5), 0.7)
    t_both = torch.full((2, 15), 0.7).masked_fill(~both.key_mask, PAD_TIME)
    with torch.no_grad():
        v_alone = task.denoiser(alone.tokens, t_alone, context[:1], context_mask[:1])  # (1, 5, 32)
        v_both = task.denoiser(both.tokens, t_both, context, context_mask)  # (2, 15, 32)
    torch.testing.assert_close(v_both[0, :5], v_alone[0], rtol=1e-4, atol=1e-5)
    assert torch.count_nonzero(v_both[0, 5:]) == 0  # PAD slots get zero velocity


def test_mmdit_is_selectable_and_trains_on_padded_batches():
    task = tiny_task(backbone={"arch": "mmdit"}, inpaint_prob=0.5)
    assert type(task.denoiser.backbone).__name__ == "MMDiT"
    batch = {"latents": [torch.randn(16, 14), torch.randn(16, 6)], "captions": CAPTIONS[:2]}
    loss = loss_of(task.train(), batch)
    loss.backward()
    assert torch.isfinite(loss) and task.denoiser.head.weight.grad.abs().sum() > 0


def test_inpainting_and_continuation_hold_latents_bit_identical():
    task = tiny_task()
    torch.nn.init.normal_(task.denoiser.head.weight, std=0.05)
    task.eval()
    known = [torch.randn(16, 20), torch.randn(16, 12)]
    frames = [torch.arange(20), torch.arange(12)]
    held = [(frames[0] < 6) | (frames[0] >= 14), frames[1] < 8]  # in-paint [6, 14); continue after 8 frames
    latents, _ = task.sample_latents(CAPTIONS[:2], known=known,
                                     held_frames=held, options=SamplingOptions(steps=4, cfg_scale=3.0, cfg_rescale=0.5))
    for z, k, h in zip(latents, known, held):
        assert z.shape == k.shape
        assert torch.equal(z[:, h], k[:, h])  # bit for bit
        assert not torch.allclose(z[:, ~h], k[:, ~h])  # the span was generated


def test_audio_inpainting_and_continuation_with_a_vae(tiny_vae_dir):
    task = tiny_task(vae=tiny_vae_dir)
    task.eval()
    rate, hop = task.sample_rate, task.vae.hop_length
    clip = (0.3 * np.sin(2 * np.pi * 300 * np.arange(2 * rate) / rate)).astype(np.float32)  # 2 s
    clean = encode_clips(task.vae, [clip])[0]  # (C, 100)
    span = Inpaint(clip, 0.6, 1.2)
    latents, lengths = task.sample_latents(["a beep"], inpaint=span, options=SamplingOptions(steps=3))
    frames = torch.arange(latents[0].shape[1])
    outside = (frames < 30) | (frames >= 60)
    assert lengths == [len(clip)]
    assert torch.equal(latents[0][:, outside], clean[:, outside])
    audio = task.sample_audio(["a beep", "a hum"], [1.0, 0.5], continuation=clip, options=SamplingOptions(steps=2))
    assert [len(a) for a in audio] == [3 * rate, int(2.5 * rate)]
    prefix, _ = task.sample_latents(["a hum"], 1.0, continuation=clip, options=SamplingOptions(steps=2))
    assert torch.equal(prefix[0][:, : len(clip) // hop], clean)
    with pytest.raises(ValueError, match="span"):
        task.sample_latents(["a beep"], inpaint=Inpaint(clip, 1.5, 3.0))


def test_variable_durations_in_one_batch(tiny_vae_dir):
    task = tiny_task(vae=tiny_vae_dir)
    task.eval()
    audio = task.sample_audio(CAPTIONS, [0.5, 1.25, 0.3], options=SamplingOptions(steps=2, cfg_scale=2.0))
    assert [len(a) for a in audio] == [8000, 20000, 4800]
    assert all(np.isfinite(a).all() and np.abs(a).max() <= 1.0 for a in audio)


def test_cfg_combine_is_the_ezaudio_rescale_written_out():
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(3, 7, 5, generator=g), torch.randn(3, 7, 5, generator=g)
    w, phi = 4.0, 0.7
    for b in range(3):
        c, u = cond[b], uncond[b]
        p = u + w * (c - u)
        p_r = p * (c.flatten().std() / p.flatten().std())
        expected = phi * p_r + (1 - phi) * p
        torch.testing.assert_close(cfg_combine(cond, uncond, w, phi)[b], expected)
    torch.testing.assert_close(cfg_combine(cond, uncond, w, 0.0), uncond + w * (cond - uncond))
