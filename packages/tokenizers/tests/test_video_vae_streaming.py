"""Streaming the causal video VAE in time chunks, and the memory-lean convolution path, change no result."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from unidit.tokenizers.video_vae import VideoVAE, video_vae_config
from unidit.tokenizers.video_vae.blocks import FrameGroupNorm, norm_silu_conv
from unidit.tokenizers.video_vae.causal_conv import CausalConv3d
from unidit.tokenizers.video_vae.streaming import chunk_bounds, time_streaming


@pytest.fixture(scope="module")
def vae() -> VideoVAE:
    """The tiny preset with a timestep-conditioned decoder and every weight random (no identity-initialised block)."""
    torch.manual_seed(0)
    model = VideoVAE(video_vae_config("tiny", timestep_conditioning=True)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2 if p.ndim > 1 else 0.05)
    return model


def _video(frames: int, batch: int = 2, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(frames)
    return torch.rand(batch, 3, frames, size, size, generator=g) * 2 - 1  # (B, 3, F, H, W)


@torch.no_grad()
@pytest.mark.parametrize("chunk", [1, 2, 3, 9])
def test_streamed_encode_and_decode_equal_the_whole_clip(vae, chunk):
    video = _video(17)  # 5 latent frames
    whole = vae.encode(video).mean
    streamed = vae.encode(video, latent_frames_per_chunk=chunk).mean
    torch.testing.assert_close(streamed, whole, rtol=1e-4, atol=1e-4)
    assert whole.abs().mean() > 0.1  # a real signal, not zeros agreeing with zeros
    t = torch.tensor([0.05, 0.5])  # per-sample timesteps reach every chunk
    decoded = vae.decode(whole, t)
    torch.testing.assert_close(vae.decode(whole, t, latent_frames_per_chunk=chunk), decoded, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_stream_state_is_cleared_after_each_call(vae):
    video = _video(9)
    whole = vae.encode(video).mean
    vae.encode(_video(17), latent_frames_per_chunk=1)
    torch.testing.assert_close(vae.encode(video).mean, whole, rtol=0, atol=0)
    with pytest.raises(RuntimeError), time_streaming(vae.decoder):  # an error inside a stream still ends it
        vae.decoder(whole[:, :, :1])
        raise RuntimeError("interrupted")
    assert not any(getattr(m, "streaming", False) or getattr(m, "past", None) is not None for m in vae.modules())
    torch.testing.assert_close(vae.encode(video).mean, whole, rtol=0, atol=0)


@torch.no_grad()
def test_streamed_gradients_match_too(vae):
    z = vae.encode(_video(9)).mean.requires_grad_(True)
    with torch.enable_grad():
        (g_whole,) = torch.autograd.grad(vae.decode(z).square().mean(), z)
        (g_stream,) = torch.autograd.grad(vae.decode(z, latent_frames_per_chunk=1).square().mean(), z)
    scale = g_whole.abs().max().item()
    torch.testing.assert_close(g_stream, g_whole, rtol=1e-3, atol=1e-4 * scale)
    assert scale > 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_chunk_sizes_raise(vae, bad):
    with pytest.raises(ValueError, match="latent_frames_per_chunk"):
        vae.decode(torch.zeros(1, vae.latent_channels, 2, 2, 2), latent_frames_per_chunk=bad)


@torch.no_grad()
def test_misaligned_chunks_name_the_frame_multiple(vae):
    video = _video(9, batch=1)
    with time_streaming(vae.encoder), pytest.raises(ValueError, match="multiple of 2 frames"):
        vae.encoder(video[:, :, :1])
        vae.encoder(video[:, :, 1:4])  # 3 frames cannot fold 2 frames into one


def test_chunk_bounds():
    assert chunk_bounds(17, 1, 8) == [(0, 1), (1, 9), (9, 17)]
    assert chunk_bounds(5, 2, 2) == [(0, 2), (2, 4), (4, 5)]
    assert chunk_bounds(3, 9, 9) == [(0, 3)]
    with pytest.raises(ValueError):
        chunk_bounds(0, 1, 1)


@pytest.mark.parametrize("grad", [False, True])
def test_single_clip_convolution_route_matches_conv3d(grad):
    """One fp32 clip large enough to take the oneDNN route gives conv3d's result, forward and backward."""
    torch.manual_seed(0)
    conv = CausalConv3d(6, 4, 3)
    x = torch.randn(1, 6, 5, 8, 8, requires_grad=grad)  # 5*8*8 > 4 output channels: the direct route
    padded = conv.pad(x)
    ours = conv.convolve(padded)
    reference = F.conv3d(padded, conv.conv.weight, conv.conv.bias, padding=conv.conv.padding)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    if grad:
        g_ours = torch.autograd.grad(ours.square().sum(), (x, conv.conv.weight))
        g_ref = torch.autograd.grad(reference.square().sum(), (x, conv.conv.weight))
        for a, b in zip(g_ours, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("grad", [False, True])
def test_norm_silu_conv_is_the_plain_composition_bit_for_bit(grad):
    torch.manual_seed(0)
    norm, conv = FrameGroupNorm(8, groups=4), CausalConv3d(8, 8, 3)
    x = torch.randn(2, 8, 5, 6, 6)
    with torch.set_grad_enabled(grad):
        assert torch.equal(norm_silu_conv(norm, conv, x), conv(F.silu(norm(x))))
