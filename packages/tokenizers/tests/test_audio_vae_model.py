"""The waveform VAE: shapes, presets, bad input, latent normalisation, save/load."""

from __future__ import annotations

import json

import pytest
import torch
from einops import rearrange
from unidit.tokenizers.audio_vae import AudioVAE, AudioVAEConfig, DiagonalGaussian, audio_vae_config
from unidit.tokenizers.audio_vae.blocks import Snake


@pytest.fixture(scope="module")
def vae() -> AudioVAE:
    torch.manual_seed(0)
    return AudioVAE(audio_vae_config("tiny")).eval()


def test_presets_have_50_latents_per_second_at_16_khz():
    for preset in ("tiny", "small", "base"):
        config = audio_vae_config(preset)
        assert (config.sample_rate, config.hop_length, config.latent_rate) == (16000, 320, 50.0)
    assert audio_vae_config("tiny").latent_channels == audio_vae_config("small").latent_channels == 16
    assert audio_vae_config("small", latent_channels=8).latent_channels == 8


def test_bad_config_values_are_refused():
    with pytest.raises(ValueError, match="unknown audio VAE preset"):
        audio_vae_config("huge")
    with pytest.raises(ValueError, match="unknown audio VAE option"):
        audio_vae_config("tiny", depth=3)
    with pytest.raises(ValueError, match="channel_mults"):
        AudioVAEConfig(strides=(2, 4), channel_mults=(1, 2, 4))
    with pytest.raises(ValueError, match="strides"):
        AudioVAEConfig(strides=(1, 4), channel_mults=(1, 2))


def test_24_khz_with_hop_480_is_configurable():
    vae = AudioVAE(audio_vae_config("tiny", sample_rate=24000, strides=(2, 4, 6, 10)))
    assert vae.hop_length == 480 and vae.sample_rate == 24000
    with torch.no_grad():
        posterior = vae.encode(torch.randn(1, 1, 480 * 5))
        assert posterior.mean.shape == (1, 16, 5)
        assert vae.decode(posterior.mean).shape == (1, 1, 480 * 5)


def test_encode_decode_shapes(vae):
    wav = torch.randn(2, 1, 320 * 7) * 0.1
    with torch.no_grad():
        posterior = vae.encode(wav)
        assert isinstance(posterior, DiagonalGaussian)
        assert posterior.mean.shape == posterior.logvar.shape == (2, 16, 7)
        assert vae.decode(posterior.mean).shape == (2, 1, 320 * 7)
        reconstruction, _ = vae(wav)
    assert reconstruction.shape == wav.shape
    assert posterior.kl_elements().shape == (2, 16, 7)


def test_length_not_a_multiple_of_the_hop_is_a_clear_error(vae):
    with pytest.raises(ValueError, match="multiple of the hop length 320"):
        vae.encode(torch.zeros(1, 1, 1000))
    with pytest.raises(ValueError, match=r"\(B, 1, T\)"):
        vae.encode(torch.zeros(1, 2, 640))
    with pytest.raises(ValueError, match="latents of shape"):
        vae.decode(torch.zeros(1, 3, 4))


def test_snake_is_identity_plus_a_periodic_bump():
    snake = Snake(3)
    x = torch.linspace(-3, 3, 50).expand(1, 3, 50)
    y = snake(x)
    assert torch.all(y >= x - 1e-6)  # sin^2 / alpha >= 0
    torch.testing.assert_close(y, x + torch.sin(x) ** 2)  # alpha = 1 at init


def test_snake_inference_path_is_bit_identical_to_the_training_path():
    snake = Snake(4, alpha=0.7)
    with torch.no_grad():
        snake.log_alpha.add_(torch.randn_like(snake.log_alpha) * 0.3)
    x = torch.randn(2, 4, 300)
    with torch.no_grad():
        inference = snake(x)  # in-place path, no autograd
    training = snake(x.clone().requires_grad_())
    assert training.grad_fn is not None
    assert torch.equal(inference, training.detach())


def test_latent_normalisation_inverts(vae):
    raw = torch.randn(3, 16, 20) * 2.5 + 0.7
    vae.fit_latent_stats(raw)
    try:
        normalized = vae.normalize(raw)
        assert normalized.mean().abs() < 1e-4 and (normalized.std(correction=0) - 1).abs() < 1e-2
        torch.testing.assert_close(vae.denormalize(normalized), raw)
        wav = torch.randn(1, 1, 320 * 4) * 0.1
        with torch.no_grad():
            torch.testing.assert_close(vae.encode_latents(wav), vae.normalize(vae.encode(wav).mean))
            z = torch.randn(1, 16, 4)
            torch.testing.assert_close(vae.decode_latents(z), vae.decode(vae.denormalize(z)))
    finally:
        vae.latent_mean.zero_()
        vae.latent_std.fill_(1.0)


def test_sampled_latents_are_reproducible_with_a_generator(vae):
    wav = torch.randn(1, 1, 640) * 0.1
    with torch.no_grad():
        a = vae.encode_latents(wav, sample=True, generator=torch.Generator().manual_seed(1))
        b = vae.encode_latents(wav, sample=True, generator=torch.Generator().manual_seed(1))
        mean = vae.encode_latents(wav)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, mean)


def test_save_and_load_round_trip_config_weights_and_latent_stats(tmp_path):
    torch.manual_seed(0)
    vae = AudioVAE(audio_vae_config("tiny", latent_channels=8)).eval()
    vae.fit_latent_stats(torch.randn(2, 8, 30) * 3 + 1)
    vae.save_pretrained(tmp_path / "vae")
    assert json.loads((tmp_path / "vae" / "config.json").read_text())["latent_channels"] == 8
    loaded = AudioVAE.from_pretrained(str(tmp_path / "vae")).eval()
    assert loaded.config == vae.config
    torch.testing.assert_close(loaded.latent_mean, vae.latent_mean, rtol=0, atol=0)
    torch.testing.assert_close(loaded.latent_std, vae.latent_std, rtol=0, atol=0)
    wav = torch.randn(1, 1, 320 * 3) * 0.1
    with torch.no_grad():
        assert torch.equal(loaded.encode_latents(wav), vae.encode_latents(wav))


def test_fit_latent_stats_refuses_wrong_shapes(vae):
    with pytest.raises(ValueError, match=r"\(N, 16, T'\)"):
        vae.fit_latent_stats(torch.randn(4, 16))


@pytest.mark.parametrize("patch_size", [1, 2])
def test_encoder_convolutions_run_on_standard_strides_with_unchanged_values(patch_size):
    """The patchified waveform is a strided view that convolutions would take as channels-last (slower
    on the CPU); the encoder copies it to standard strides. Values and gradients match the view's."""
    torch.manual_seed(0)
    vae = AudioVAE(audio_vae_config("tiny", patch_size=patch_size))
    first_level_inputs = []
    conv = vae.encoder.net[1].body[0].body[1]  # first level, first residual unit's dilated conv
    handle = conv.register_forward_pre_hook(lambda module, args: first_level_inputs.append(args[0]))
    wav = torch.randn(2, 1, 8 * vae.hop_length)
    moments = vae.encoder(wav)
    handle.remove()
    seen = first_level_inputs[0]
    assert seen.stride() == torch.empty(seen.shape).stride()  # standard strides, not channels-last
    grads = torch.autograd.grad(moments.square().sum(), list(vae.encoder.parameters()))
    as_view = vae.encoder.net(rearrange(wav, "b 1 (t p) -> b p t", p=patch_size))  # the layout it used to see
    torch.testing.assert_close(moments, as_view, rtol=1e-5, atol=1e-6)
    view_grads = torch.autograd.grad(as_view.square().sum(), list(vae.encoder.parameters()))
    # oneDNN sums the weight gradient in another order for the two layouts: on CPUs without AVX512-BF16
    # (the 2-core EPYC of this session) one element of 112 differs by 8e-6 (2e-4 relative)
    for got, expected in zip(grads, view_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-5)
