"""Frozen image encoders for the captioner: a Hugging Face ViT folder and a unidit video VAE, one frame."""

from __future__ import annotations

import pytest
import torch
from unidit.tasks.caption.denoiser import CaptionDenoiser, CaptionDenoiserConfig
from unidit.tasks.caption.pretrained_image import build_image_encoder
from unidit.tokenizers.video_vae import VideoVAE, video_vae_config

TINY = {"preset": "tiny", "backbone": {"dim": 64, "depth": 1, "num_heads": 4, "context_dim": 32}}


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vit")
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64), add_pooling_layer=False).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vae")
    VideoVAE(video_vae_config("tiny")).save_pretrained(folder)
    return str(folder)


def _trains_only_the_projection(network: CaptionDenoiser, frozen: torch.nn.Module) -> None:
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    optimiser = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=1e-2)
    x, t = torch.randn(2, 24, 384), torch.full((2,), 0.5)
    network.train()
    assert not frozen.training  # the frozen encoder stays in eval mode
    context, mask = network.image_context(torch.rand(2, 3, 64, 64) * 2 - 1)
    network(x, t, context, mask).square().mean().backward()
    optimiser.step()
    assert all(p.grad is None for p in frozen.parameters())
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())
    assert network.image_encoder.proj.weight.grad is not None


def test_a_hugging_face_vit_gives_one_token_per_hidden_state(vit_folder):
    network = CaptionDenoiser(CaptionDenoiserConfig(**TINY, image_encoder=f"hf:{vit_folder}"))
    context, mask = network.image_context(torch.zeros(3, 3, 64, 64))  # resized to the ViT's 32x32 input
    assert context.shape == (3, 1 + 16, 32) and mask.all()  # [CLS] + 4x4 patches
    assert network.null_context.shape == (17, 32)
    _trains_only_the_projection(network, network.image_encoder.backbone)


def test_the_video_vae_encodes_a_picture_as_a_one_frame_clip(vae_folder):
    network = CaptionDenoiser(CaptionDenoiserConfig(**TINY, image_encoder=f"video-vae:{vae_folder}"))
    context, _ = network.image_context(torch.zeros(2, 3, 64, 64))
    assert context.shape == (2, 8 * 8, 32)  # one token per latent cell (spatial compression 8)
    vae = network.image_encoder.backbone
    pictures = torch.rand(2, 3, 64, 64) * 2 - 1
    cells = vae.encode_latents(pictures[:, :, None])  # the latents the tokens are built from
    assert cells.shape == (2, vae.latent_channels, 1, 8, 8)
    _trains_only_the_projection(network, vae)


def test_unknown_or_missing_encoders_are_named(tmp_path):
    with pytest.raises(ValueError, match="image_encoder 'clip'"):
        build_image_encoder("clip", 64, 8, 32, 32)
    with pytest.raises(FileNotFoundError, match="video-vae:.*no config.json"):
        build_image_encoder(f"video-vae:{tmp_path}", 64, 8, 32, 32)
    with pytest.raises(ValueError, match="could not load a Hugging Face vision model"):
        build_image_encoder(f"hf:{tmp_path}", 64, 8, 32, 32)
