"""Tiled encode / decode equal the whole-clip result at hop-aligned tiles."""

from __future__ import annotations

import pytest
import torch
import unidit.tokenizers.audio_vae.tiling as tiling
from unidit.tokenizers.audio_vae import AudioVAE, audio_vae_config, receptive_context, tiled_decode, tiled_encode

VARIANTS = {
    "tiny": {},  # one residual unit per level
    "oobleck": {"dilations": (1, 3, 9), "weight_norm": True},  # the base preset's layout
    "patched": {"patch_size": 2, "strides": (4, 5, 8), "channel_mults": (2, 4, 8)},
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def vae(request) -> AudioVAE:
    torch.manual_seed(0)
    return AudioVAE(audio_vae_config("tiny", **VARIANTS[request.param])).eval()


def test_receptive_context_of_the_presets():
    tiny = receptive_context(AudioVAE(audio_vae_config("tiny")))
    assert (tiny.encode_left, tiny.encode_right, tiny.decode_left, tiny.decode_right) == (3, 3, 5, 5)
    oobleck = receptive_context(AudioVAE(audio_vae_config("tiny", **VARIANTS["oobleck"])))
    assert (oobleck.encode_left, oobleck.encode_right, oobleck.decode_left, oobleck.decode_right) == (8, 8, 10, 10)


@pytest.mark.parametrize("tile", [7, 24])
def test_tiled_encode_equals_untiled(vae, tile):
    torch.manual_seed(1)
    wav = torch.randn(2, 1, 320 * 61) * 0.3  # 61 frames: the last tile is a partial one
    with torch.no_grad():
        whole = vae.encode(wav).mean  # (2, 16, 61)
    tiled = tiled_encode(vae, wav, tile_latents=tile, overlap_latents=16)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-5  # float summation order only (~1e-6)


@pytest.mark.parametrize("tile", [7, 24])
def test_tiled_decode_equals_untiled(vae, tile):
    torch.manual_seed(2)
    z = torch.randn(2, 16, 61)
    with torch.no_grad():
        whole = vae.decode(z)  # (2, 1, 61 * 320)
    tiled = tiled_decode(vae, z, tile_latents=tile, overlap_latents=16)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-5


def test_the_measured_context_is_enough_and_one_frame_less_is_not(vae, monkeypatch):
    torch.manual_seed(3)
    wav, z = torch.randn(1, 1, 320 * 50) * 0.3, torch.randn(1, 16, 50)
    with torch.no_grad():
        whole_latents, whole_wav = vae.encode(wav).mean, vae.decode(z)
    context = receptive_context(vae)
    exact = tiled_encode(vae, wav, 10, context.encode), tiled_decode(vae, z, 10, context.decode)
    assert (exact[0] - whole_latents).abs().max() < 1e-5 and (exact[1] - whole_wav).abs().max() < 1e-5
    monkeypatch.setattr(tiling, "_check_tiling", lambda *args: None)
    short = tiled_encode(vae, wav, 10, context.encode - 1), tiled_decode(vae, z, 10, context.decode - 1)
    assert (short[0] - whole_latents).abs().max() > 1e-5 and (short[1] - whole_wav).abs().max() > 1e-5


def test_too_small_overlap_and_unaligned_length_are_refused():
    vae = AudioVAE(audio_vae_config("tiny"))
    with pytest.raises(ValueError, match="overlap_latents=2 is smaller than the receptive context"):
        tiled_encode(vae, torch.zeros(1, 1, 320 * 10), tile_latents=4, overlap_latents=2)
    with pytest.raises(ValueError, match="overlap_latents=4 is smaller"):
        tiled_decode(vae, torch.zeros(1, 16, 10), tile_latents=4, overlap_latents=4)
    with pytest.raises(ValueError, match="multiple of the hop length"):
        tiled_encode(vae, torch.zeros(1, 1, 321))
