"""The t2v task on the tiny presets: the loss falls, image-to-video and extension keep the held latents
exactly, per-token timesteps reach the right slots, exports are self-contained, bad input is refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from unidit.backbones.layout import pack
from unidit.backbones.slots import DATA, NEXTFRAME, NEXTLINE
from unidit.tasks.t2v.datamodule import T2VData, encode_clips
from unidit.tasks.t2v.denoiser import VideoDenoiserConfig, VideoLatentDenoiser
from unidit.tasks.t2v.task import VAE_FOLDER, T2VTask, load_t2v_task
from unidit.tokenizers.video_vae import VideoVAE
from unidit.training.export import export_task
from unidit.training.sampling import SamplingOptions
from unidit.backbones.latent_denoiser import slot_times


def _tiny_task(vae_dir, **overrides) -> T2VTask:
    torch.manual_seed(0)
    options = dict(vae=str(vae_dir), preset="tiny", latent_channels=4, lr=2e-3, warmup_steps=5)
    options.update(overrides)
    task = T2VTask(**options)
    task.setup("fit")
    return task


@pytest.fixture(scope="module")
def latents(tiny_vae_dir, small_clips):
    return torch.from_numpy(encode_clips(VideoVAE.from_pretrained(tiny_vae_dir).eval(), small_clips.videos))


def _fixed_loss(task, batch) -> float:
    inputs = task.flow_inputs(batch)
    context, mask = task.encode_captions(inputs.captions)
    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return float(task.flow.loss(lambda x, t: task.denoiser(x, t, context, mask), inputs.x0, generator=generator))


def test_training_lowers_the_loss(tiny_vae_dir, latents, small_clips):
    task = _tiny_task(tiny_vae_dir, caption_dropout=0.0)
    train = {"latents": latents[:16], "caption": small_clips.captions[:16]}
    before = _fixed_loss(task.eval(), train)
    optimizer = torch.optim.AdamW(task.denoiser.parameters(), lr=3e-3)
    task.train()
    for step in range(30):
        loss = task.training_step(train, step)  # I2V / extension holds are drawn too
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = _fixed_loss(task.eval(), train)
    assert after < 0.7 * before, (before, after)


def test_image_to_video_keeps_the_first_latent_frame_exactly(tiny_vae_dir, small_clips):
    task = _tiny_task(tiny_vae_dir).eval()
    image = small_clips.videos[3, 0]  # (64, 64, 3)
    out = task.sample_latents(["a red circle grows", "a blue star falls"], image=image, options=SamplingOptions(steps=3, cfg_scale=2.0))
    held = task.encode_video(image[None, None])  # (1, C, 1, 8, 8): the image as a one-frame clip
    assert out.shape == (2, 4, 5, 8, 8)
    assert torch.equal(out[:, :, :1], held.expand(2, -1, -1, -1, -1))
    assert not torch.equal(out[:, :, 1:2], held.expand(2, -1, -1, -1, -1))
    # causal VAE: the image's latent is latent frame 0 of the clip that starts with it
    whole = task.encode_video(small_clips.videos[3:4])
    torch.testing.assert_close(whole[:, :, :1], held, atol=1e-5, rtol=1e-5)
    videos = task.sample_videos(["a red circle grows"], image=image, options=SamplingOptions(steps=2))
    assert videos.shape == (1, 17, 64, 64, 3) and videos.dtype == np.uint8


def test_extension_keeps_the_prefix_latents_exactly_and_can_run_longer(tiny_vae_dir, small_clips):
    task = _tiny_task(tiny_vae_dir).eval()
    prefix = small_clips.videos[5, :9]  # 9 frames -> 3 latent frames
    out = task.sample_latents(["a green square rises"], extend=prefix, num_frames=21, options=SamplingOptions(steps=3, seed=1))
    assert out.shape == (1, 4, 6, 8, 8)  # 21 frames -> 6 latent frames
    assert torch.equal(out[:, :, :3], task.encode_video(prefix[None]))
    with pytest.raises(ValueError, match="covers 5 latent frames; the output has only 5"):
        task.sample_latents(["x"], extend=small_clips.videos[5], options=SamplingOptions(steps=1))
    with pytest.raises(ValueError, match=r"num_frames must be 1 \+ k\*4"):
        task.sample_latents(["x"], num_frames=16, options=SamplingOptions(steps=1))
    with pytest.raises(ValueError, match="either image"):
        task.sample_latents(["x"], image=prefix[0], extend=prefix, options=SamplingOptions(steps=1))


def test_training_holds_first_frames_clean(tiny_vae_dir, latents, small_clips):
    task = _tiny_task(tiny_vae_dir, first_frame_prob=0.5, prefix_prob=0.5).train()
    inputs = task.flow_inputs({"latents": latents[:16], "caption": small_clips.captions[:16]})
    frames_held = inputs.cond.mask.view(16, 5, 64).all(dim=2).sum(dim=1)  # (B,) whole latent frames held
    assert set(frames_held.tolist()) <= {1, 2, 3, 4} and 1 in frames_held.tolist()
    assert (inputs.cond.mask.view(16, 5, 64).any(dim=2).sum(dim=1) == frames_held).all()  # held by whole frames


def test_per_token_timesteps_follow_the_frames():
    denoiser = VideoLatentDenoiser(VideoDenoiserConfig(preset="tiny", latent_channels=4))
    t = torch.full((2, 5 * 64), 0.7)
    t[:, :64] = 0.0  # latent frame 0 held clean
    packed = pack(torch.zeros(2, 4, 5, 8, 8), (1, 2, 2))
    token_t = slot_times(t.reshape(2, 5, 8, 8), packed)  # (B, L)
    frame = packed.positions[..., 0]
    for kind in (DATA, NEXTLINE, NEXTFRAME):
        at = packed.slot_kind == kind
        assert torch.equal(token_t[at & (frame == 0)], torch.zeros_like(token_t[at & (frame == 0)]))
        assert torch.allclose(token_t[at & (frame > 0)], torch.tensor(0.7))
    x = torch.randn(2, 5 * 64, 4)
    with torch.no_grad():
        torch.testing.assert_close(denoiser(x, torch.full((2, 320), 0.3)), denoiser(x, torch.full((2,), 0.3)))


def test_export_carries_its_vae_and_samples_identically(tiny_vae_dir, tmp_path):
    task = _tiny_task(tiny_vae_dir, preset="tiny", backbone={"arch": "mmdit"}).eval()
    export = export_task(task, tmp_path / "run" / "model")
    shutil.copytree(tiny_vae_dir, export / VAE_FOLDER)
    moved = shutil.move(str(tmp_path / "run"), str(tmp_path / "elsewhere"))
    loaded = load_t2v_task(f"{moved}/model")
    assert loaded.vae_path.endswith(f"elsewhere/model/{VAE_FOLDER}")
    expected = task.sample_videos(["a white star spins"], options=SamplingOptions(steps=2, seed=3))
    assert np.array_equal(loaded.sample_videos(["a white star spins"], options=SamplingOptions(steps=2, seed=3)), expected)


def test_bad_vae_and_clips_are_refused(tiny_vae_dir, tmp_path, small_clips):
    with pytest.raises(ValueError, match="has 4 latent channels but the denoiser was built for 16"):
        _ = _tiny_task(tiny_vae_dir, latent_channels=16).vae
    with pytest.raises(FileNotFoundError, match="video VAE not found at .*nope"):
        _ = _tiny_task(tmp_path / "nope").vae
    with pytest.raises(ValueError, match="no VAE"):
        _ = _tiny_task(None, vae=None).vae
    task = _tiny_task(tiny_vae_dir)
    with pytest.raises(ValueError, match="must be 64x64 pixels"):
        task.encode_video(np.zeros((1, 17, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"1 \+ k\*4 frames"):
        task.encode_video(np.zeros((1, 16, 64, 64, 3), dtype=np.uint8))


def test_datamodule_encodes_once_and_caches_by_vae(tiny_vae_dir, t2v_cache, monkeypatch):
    options = dict(encoder_vae=str(tiny_vae_dir), num_train=8, num_val=4, num_test=4, batch_size=4,
                   cache_dir=str(t2v_cache))
    data = T2VData(**options)
    data.setup("fit")
    assert data.latents["train"].shape == (8, 4, 5, 8, 8)
    batch = next(iter(data.train_dataloader()))
    assert batch["latents"].shape == (4, 4, 5, 8, 8) and len(batch["caption"]) == 4

    import unidit.tasks.t2v.datamodule as datamodule

    monkeypatch.setattr(datamodule, "encode_clips", lambda *a, **k: pytest.fail("latents were encoded again"))
    again = T2VData(**options)
    again.setup("fit")  # from the cache
    assert np.array_equal(again.latents["val"], data.latents["val"])
    with pytest.raises(ValueError, match="needs a VAE"):
        T2VData(num_train=8, num_val=4, num_test=4, cache_dir=str(t2v_cache)).setup("fit")
