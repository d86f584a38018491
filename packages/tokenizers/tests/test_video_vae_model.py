"""Tests of the causal video VAE: causality, the 1 + tc*k rule, shapes, latent stats, the timestep decoder."""

from __future__ import annotations

import pytest
import torch
from unidit.tokenizers.video_vae import VideoVAE, psnr, ssim, video_vae_config


@pytest.fixture(scope="module")
def tiny() -> VideoVAE:
    torch.manual_seed(0)
    return VideoVAE(video_vae_config("tiny")).eval()


def _video(frames: int, size: int = 16, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, size, size, generator=g) * 2 - 1  # (B, 3, F, H, W)


def _perturb_after(video: torch.Tensor, frame: int) -> torch.Tensor:
    changed = video.clone()
    changed[:, :, frame + 1 :] = torch.rand_like(changed[:, :, frame + 1 :]) * 2 - 1
    return changed


@torch.no_grad()
def test_first_frame_is_encoded_alone(tiny):
    video = _video(9)
    before = tiny.encode(video).mean
    after = tiny.encode(_perturb_after(video, 0)).mean
    torch.testing.assert_close(after[:, :, 0], before[:, :, 0], rtol=0, atol=0)
    assert not torch.allclose(after[:, :, 1:], before[:, :, 1:])
    # a one-frame video is an image: its latent is latent frame 0 of any clip that starts with it
    image = tiny.encode(video[:, :, :1]).mean
    torch.testing.assert_close(image[:, :, 0], before[:, :, 0], rtol=1e-5, atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("last_kept", [0, 3, 4, 5, 8, 12])
def test_latent_frames_never_see_later_frames(tiny, last_kept):
    """Latent frame j covers frames up to j*tc: frames after ``last_kept`` change no latent frame ending at or before it."""
    tc = tiny.temporal_compression
    video = _video(17)
    before = tiny.encode(video).mean
    after = tiny.encode(_perturb_after(video, last_kept)).mean
    unchanged = last_kept // tc + 1  # latent frames 0 .. last_kept // tc end at or before frame last_kept
    torch.testing.assert_close(after[:, :, :unchanged], before[:, :, :unchanged], rtol=0, atol=0)
    assert not torch.allclose(after[:, :, unchanged:], before[:, :, unchanged:])


@torch.no_grad()
def test_decoder_is_causal_too(tiny):
    z = tiny.encode(_video(17)).mean  # (1, C, 5, 2, 2)
    changed = z.clone()
    changed[:, :, 3:] += 1.0
    before, after = tiny.decode(z), tiny.decode(changed)
    tc = tiny.temporal_compression
    torch.testing.assert_close(after[:, :, : 2 * tc + 1], before[:, :, : 2 * tc + 1], rtol=0, atol=0)


@pytest.mark.parametrize("frames", [2, 8, 10, 16])
def test_other_lengths_raise_naming_the_valid_ones(tiny, frames):
    with pytest.raises(ValueError, match=r"1 \+ k\*4 frames \(1, 5, 9, 13, 17"):
        tiny.encode(_video(frames))


def test_sizes_must_be_multiples_of_the_spatial_compression(tiny):
    with pytest.raises(ValueError, match="multiples of the spatial compression 8, got 12x16"):
        tiny.encode(torch.zeros(1, 3, 5, 12, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, F, H, W\)"):
        tiny.encode(torch.zeros(3, 5, 16, 16))


@torch.no_grad()
@pytest.mark.parametrize(
    "preset, frames, size, latent",
    [
        ("tiny", 9, 16, (4, 3, 2, 2)),
        ("small", 17, 64, (16, 5, 8, 8)),
        ("ltx", 9, 64, (128, 2, 2, 2)),
    ],
)
def test_shapes_of_each_preset(preset, frames, size, latent):
    torch.manual_seed(0)
    vae = VideoVAE(video_vae_config(preset)).eval()
    assert (vae.latent_channels, vae.temporal_compression) == (latent[0], {"tiny": 4, "small": 4, "ltx": 8}[preset])
    assert vae.spatial_compression == {"tiny": 8, "small": 8, "ltx": 32}[preset]
    video = _video(frames, size)
    recon, posterior = vae(video)
    assert posterior.mean.shape == (1, *latent)
    assert recon.shape == video.shape
    assert vae.latent_shape(frames, size, size) == latent
    assert torch.isfinite(recon).all()


def test_ltx_preset_compresses_1_to_192():
    config = video_vae_config("ltx")
    pixels = 3 * config.spatial_compression**2 * config.temporal_compression
    assert (config.spatial_compression, config.temporal_compression, config.latent_channels) == (32, 8, 128)
    assert pixels // config.latent_channels == 192


def test_config_overrides_and_errors():
    assert video_vae_config("tiny", latent_channels=8).latent_channels == 8
    with pytest.raises(ValueError, match="unknown video VAE preset 'huge'"):
        video_vae_config("huge")
    with pytest.raises(ValueError, match="unknown video VAE config fields"):
        video_vae_config("tiny", no_such_field=1)


@torch.no_grad()
def test_latent_stats_normalise_and_round_trip(tiny):
    video = _video(9, batch=2)
    raw = tiny.encode(video).mean  # (2, C, 3, 2, 2)
    vae = VideoVAE(tiny.config).eval()
    vae.load_state_dict(tiny.state_dict())
    torch.testing.assert_close(vae.encode_latents(video), raw)  # identity before fitting
    vae.fit_latent_stats(raw * 3 + 2)
    normalised = vae.encode_latents(video)
    torch.testing.assert_close(normalised, (raw - vae.latent_mean.view(1, -1, 1, 1, 1)) / vae.latent_std.view(1, -1, 1, 1, 1))
    torch.testing.assert_close(vae.decode_latents(normalised), tiny.decode(raw).clamp(-1, 1), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="expected raw latents"):
        vae.fit_latent_stats(torch.zeros(2, 3))


@torch.no_grad()
def test_save_and_load_keep_config_and_stats(tmp_path, tiny):
    vae = VideoVAE(video_vae_config("tiny", timestep_conditioning=True)).eval()
    vae.fit_latent_stats(torch.randn(4, 4, 3, 2, 2) * 2 + 1)
    vae.save_pretrained(tmp_path / "vae")
    loaded = VideoVAE.from_pretrained(tmp_path / "vae").eval()
    assert loaded.config == vae.config
    torch.testing.assert_close(loaded.latent_mean, vae.latent_mean, rtol=0, atol=0)
    torch.testing.assert_close(loaded.latent_std, vae.latent_std, rtol=0, atol=0)
    video = _video(5)
    torch.testing.assert_close(loaded.encode_latents(video), vae.encode_latents(video), rtol=0, atol=0)


@torch.no_grad()
def test_timestep_conditioned_decoder_depends_on_t():
    torch.manual_seed(0)
    vae = VideoVAE(video_vae_config("tiny", timestep_conditioning=True)).eval()
    for param in vae.decoder.parameters():  # as after training: an untrained decoder is its shortcut path alone
        param.add_(0.05 * torch.randn_like(param))
    z = torch.randn(2, 4, 3, 2, 2)
    clean = vae.decode(z, torch.zeros(2))
    assert clean.shape == (2, 3, 9, 16, 16)
    torch.testing.assert_close(vae.decode(z), clean)  # no timestep = clean latent, t = 0
    noisy = vae.decode(z, vae.config.decode_timestep)  # a float is broadcast over the batch
    assert not torch.allclose(noisy, clean)
    per_sample = vae.decode(z, torch.tensor([0.0, 0.05]))
    torch.testing.assert_close(per_sample[0], clean[0])
    torch.testing.assert_close(per_sample[1], noisy[1])
    torch.testing.assert_close(vae.noise_latents(z, 0.0), z)
    g = torch.Generator().manual_seed(0)
    noised = vae.noise_latents(z, torch.tensor([0.0, 0.05]), generator=g)
    torch.testing.assert_close(noised[0], z[0])
    assert 0 < (noised[1] - 0.95 * z[1]).abs().mean() < 0.1


def test_metrics_on_identical_and_different_videos():
    video = _video(5, size=16, batch=2)
    assert torch.isinf(psnr(video, video)).all()
    torch.testing.assert_close(ssim(video, video), torch.ones(2))
    noisy = (video + 0.1 * torch.randn_like(video)).clamp(-1, 1)
    assert (psnr(noisy, video) < 30).all() and (psnr(noisy, video) > 15).all()
    assert (ssim(noisy, video) < 1).all()
    # [0, 1] videos with data_range=1 give the same PSNR as [-1, 1] ones with the default range 2
    torch.testing.assert_close(psnr((noisy + 1) / 2, (video + 1) / 2, data_range=1.0), psnr(noisy, video))
    with pytest.raises(ValueError, match="one shape"):
        psnr(video, video[:, :, :3])
