"""Velocity network of the diffusion captioner: text latents in, image tokens as context (LaDiC).

LaDiC (Wang et al. 2024, §3.2) diffuses the fixed-length BERT latents of a
caption (24 positions × 384 channels here, from
:class:`~unidit.tokenizers.text_latent.TextLatentTokenizer`) with a transformer
that cross-attends to image features. Here the 24 positions are a 1-axis latent
grid for the shared :class:`~unidit.backbones.latent_denoiser.LatentDenoiser`
(patch 1: each position is one token, projected linearly into the backbone),
and the context is the feature map of the :class:`ImageEncoder` trained with it.

Self-conditioning (Chen et al. 2023, "Analog Bits", §3; used by LaDiC): the
network also reads its own previous estimate of the clean latents, concatenated
to the noisy latents channel-wise. In training mode :meth:`CaptionDenoiser.forward`
draws, per sample with probability ``self_condition_prob``, a first estimate
without gradient and feeds it back (zeros for the others), so the shared
rectified-flow loss trains both paths; the sampler passes the previous step's
estimate explicitly.

What the network predicts is a choice (``prediction``): the clean latents
``x0`` themselves, as LaDiC does (§3.2; the default), or the rectified-flow
velocity ``ε − x0`` as the other unidit tasks. Either way
:meth:`CaptionDenoiser.clean_estimate` and :meth:`CaptionDenoiser.as_velocity`
give the other quantity, so the samplers and self-conditioning do not care.

**Why x0.** Everything the network writes passes through its head, a linear map
from the backbone's width to the latent's channels: with a backbone narrower
than the latent (128 against MiniLM's 384 here) its outputs span at most a
128-dimensional subspace. A velocity ``ε − x0`` must carry the noise in every
channel, so a velocity network leaves the starting noise untouched in the other
256 dimensions of every sample (the sampler only ever moves the latents inside
the head's span; tested). An x0 network only has to write the clean latents, and
the velocity ``(x_t − x0) / t`` passes the noise through exactly. LaDiC's
denoiser (BERT-base) works at its latents' own width, 768, so it never met this; here
x0 prediction raised CIDEr-D from 0.54 to 0.83 at 400 steps (docs/tasks/caption.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from unidit.backbones.config import BackboneConfig, backbone_config
from unidit.backbones.latent_denoiser import DenoiserConfig, LatentDenoiser
from unidit.tasks.caption.pretrained_image import build_image_encoder


PREDICTIONS = ("velocity", "x0")
CONTEXT_GATE_INIT = 1.0  # tanh(1) = 0.76 of every cross-attention head's output passes at the start
T_MIN = 1e-2  # x0-prediction: the velocity (x_t − x0) / t is taken with t at least this


@dataclass
class CaptionDenoiserConfig(DenoiserConfig):
    """Sizes of the captioner (``preset`` and ``backbone`` as in :class:`DenoiserConfig`).

    Attributes:
        latent_dim: channels of a text latent (the BERT width, 384 for MiniLM).
        length: latent positions per caption (LaDiC: 24).
        image_size: side of the square input pictures.
        image_grid: side of the encoder's feature map; ``image_grid²`` context tokens.
        image_channels: width of the encoder's first convolution.
        self_condition_prob: probability of a self-conditioned training pass (0 = off).
        prediction: what the network outputs, ``"x0"`` (the clean latents; needed when the backbone is
            narrower than the latent, see the module docstring) or ``"velocity"`` (ε − x0).
        image_encoder: ``"conv"`` (the small encoder trained with the task), ``"hf:<id or folder>"``
            or ``"video-vae:<folder>"`` (frozen; :mod:`unidit.tasks.caption.pretrained_image`).
    """

    latent_dim: int = 384
    length: int = 24
    image_size: int = 64
    image_grid: int = 8
    image_channels: int = 32
    self_condition_prob: float = 0.5
    prediction: str = "x0"
    image_encoder: str = "conv"

    def backbone_config(self) -> BackboneConfig:
        """The preset with the overrides; the cross-attention gates start open unless ``backbone`` says otherwise.

        Lumina-T2X zero-initialises them, which suits a pretrained text context. The
        captioner's context comes from an image encoder trained from scratch with it: behind a
        closed gate that encoder gets no useful gradient, the gates get pushed back towards zero
        by its noise, and the model ends up captioning from the language prior alone (measured:
        gates at 3e-4 after 1,750 steps, the same caption for any picture).
        """
        return backbone_config(self.preset, **{"cross_gate_init": CONTEXT_GATE_INIT, **self.backbone})

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction: expected one of {PREDICTIONS}, got {self.prediction!r}")
        if not 0.0 <= self.self_condition_prob <= 1.0:
            raise ValueError(f"self_condition_prob: expected a probability in [0, 1], got {self.self_condition_prob}")
        if self.latent_dim < 1 or self.length < 1:
            raise ValueError(f"latent_dim and length: expected positive sizes, got {self.latent_dim}, {self.length}")


class CaptionDenoiser(LatentDenoiser, PyTorchModelHubMixin):
    """Predicts the velocity (or the clean latents) of noisy text latents ``(B, L, D)`` given image tokens."""

    def __init__(self, config: CaptionDenoiserConfig):
        config = CaptionDenoiserConfig.coerce(config)
        backbone = config.backbone_config()
        # noisy latents and the self-conditioning estimate side by side: 2·D channels in, D out
        super().__init__(backbone, channels=2 * config.latent_dim, patch_size=(1,), out_channels=config.latent_dim)
        self.config = config
        self.image_encoder = build_image_encoder(config.image_encoder, config.image_size, config.image_grid,
                                                 config.image_channels, backbone.context_dim)
        # the unconditional context of classifier-free guidance: one learned token sequence
        self.null_context = nn.Parameter(torch.zeros(self.image_encoder.num_tokens, backbone.context_dim))

    def image_context(self, images: Tensor, keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(B, 3, H, W)`` -> context ``(B, S, Dc)`` and mask ``(B, S)``; rows with ``keep`` False get the null image."""
        tokens = self.image_encoder(images)  # (B, S, Dc)
        if keep is not None:
            tokens = torch.where(keep.to(tokens.device)[:, None, None], tokens, self.null_context.to(tokens.dtype))
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)

    def null_image_context(self, batch: int) -> tuple[Tensor, Tensor]:
        """The unconditional context of ``batch`` rows: ``(B, S, Dc)`` and an all-True mask ``(B, S)``."""
        tokens = self.null_context[None].expand(batch, -1, -1)  # (B, S, Dc)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)

    def _check(self, x: Tensor, self_cond: Tensor | None) -> None:
        want = (self.config.length, self.config.latent_dim)
        if x.dim() != 3 or tuple(x.shape[1:]) != want:
            raise ValueError(f"text latents: expected (B, {want[0]}, {want[1]}) (length x latent_dim of the "
                             f"text-latent tokenizer), got {tuple(x.shape)}")
        if self_cond is not None and self_cond.shape != x.shape:
            raise ValueError(f"self_cond: expected the latents' shape {tuple(x.shape)}, got {tuple(self_cond.shape)}")

    def predict(self, x: Tensor, t: Tensor, context: Tensor | None, context_mask: Tensor | None,
                self_cond: Tensor) -> Tensor:
        """One network pass: ``(B, L, D)`` latents + ``(B, L, D)`` estimate -> ``(B, L, D)`` velocity or x0."""
        grid = rearrange(torch.cat([x, self_cond], dim=-1), "b l c -> b c l")  # (B, 2D, L)
        out = LatentDenoiser.forward(self, grid, t, context, context_mask)  # (B, D, L)
        return rearrange(out, "b c l -> b l c")  # (B, L, D)

    def forward(
        self,
        x: Tensor,  # (B, L, D) noisy text latents
        t: Tensor,  # (B,) times in [0, 1]
        context: Tensor | None = None,  # (B, S, Dc) image tokens (see image_context)
        context_mask: Tensor | None = None,  # (B, S)
        self_cond: Tensor | None = None,  # (B, L, D) previous clean estimate; None = zeros / drawn in training
    ) -> Tensor:
        self._check(x, self_cond)
        if self_cond is None:
            self_cond = torch.zeros_like(x)
            if self.training and self.config.self_condition_prob > 0:
                chosen = torch.rand(x.shape[0]) < self.config.self_condition_prob  # (B,) global stream: checkpointed
                if bool(chosen.any()):
                    with torch.no_grad():
                        first = self.predict(x, t, context, context_mask, self_cond)  # (B, L, D)
                        estimate = self.clean_estimate(x, t, first)  # (B, L, D)
                    self_cond = torch.where(chosen.to(x.device)[:, None, None], estimate, self_cond)
        return self.predict(x, t, context, context_mask, self_cond)

    def clean_estimate(self, x_t: Tensor, t: Tensor, out: Tensor) -> Tensor:
        """The network's ``(B, L, D)`` estimate of the clean latents from its output ``out``."""
        return out if self.config.prediction == "x0" else clean_estimate(x_t, t, out)

    def as_velocity(self, x_t: Tensor, t: Tensor, out: Tensor) -> Tensor:
        """The rectified-flow velocity implied by the output ``out`` (what the samplers integrate)."""
        if self.config.prediction == "velocity":
            return out
        tt = (t[:, None, None] if t.dim() == 1 else t[..., None]).to(x_t.dtype).clamp(min=T_MIN)  # (B, 1|L, 1)
        return (x_t - out) / tt  # x_t = (1-t)·x0 + t·ε  =>  ε − x0 = (x_t − x0) / t


def clean_estimate(x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
    """``x0 = x_t - t·v`` under ``x_t = (1-t)·x0 + t·ε``, ``v = ε - x0``; ``t`` is ``(B,)`` or ``(B, L)``."""
    tt = t[:, None, None] if t.dim() == 1 else t[..., None]  # (B, 1, 1) or (B, L, 1)
    return x_t - tt.to(x_t.dtype) * v
