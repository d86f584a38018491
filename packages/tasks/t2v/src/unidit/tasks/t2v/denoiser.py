"""Video-latent velocity network: VAE latents through the 3-axis layout and the shared backbone.

A causal video VAE latent ``(C, F', H', W')`` is cut into ``(1, 2, 2)``
patches (one latent frame deep, as Lumina-T2X patchifies video frame by
frame, Gao et al. 2024, §2.2) and laid out with a learnable ``[nextline]``
after each row and ``[nextframe]`` after each frame; the backbone (Flag-DiT
by default, MMDiT selectable) denoises the sequence and a linear head maps
each token back to its patch.

The rectified-flow objective works on ``(B, L, C)`` token tensors, so this
network's input and output are the latent's *cells* in raster order,
``(B, F'·H'·W', C)``; the spatial size ``(H', W')`` is fixed by the config and
the number of latent frames follows from ``L``, so a longer clip (video
extension) needs no other model.  Every cell may carry its own timestep
(LTX-Video, HaCohen et al. 2024, §3.4: conditioning frames held at t = 0); a
patch takes the mean t of its cells (one value whenever whole latent frames
are held, as here) and a placeholder the t of the patch before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from unidit.backbones.build import build_backbone
from unidit.backbones.config import backbone_config
from unidit.backbones.layout import PackedBatch, pack, unpack_stacked
from unidit.backbones.slots import DATA


@dataclass
class VideoDenoiserConfig:
    """Sizes of the video-latent denoiser.

    Attributes:
        preset: backbone size preset (tiny, small, base, large).
        backbone: overrides of the preset's ``BackboneConfig`` fields (e.g. ``{"arch": "mmdit"}``).
        latent_channels: channels of the VAE latent.
        latent_height: latent rows ``H'`` (frame height / VAE spatial compression).
        latent_width: latent columns ``W'``.
        patch_size: ``(frames, rows, cols)`` of a patch in latent cells.
    """

    preset: str = "small"
    backbone: dict = field(default_factory=dict)
    latent_channels: int = 16
    latent_height: int = 8
    latent_width: int = 8
    patch_size: tuple[int, int, int] = (1, 2, 2)

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(p) for p in self.patch_size)  # JSON gives a list
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be three positive ints (frames, rows, cols), got {self.patch_size}")
        _, ph, pw = self.patch_size
        if self.latent_height % ph or self.latent_width % pw:
            raise ValueError(
                f"latent grid {self.latent_height}x{self.latent_width} is not divisible by the patch "
                f"{ph}x{pw}; choose a patch that divides the latent (e.g. patch_size [1, 1, 1])"
            )


class VideoLatentDenoiser(nn.Module, PyTorchModelHubMixin):
    """Predicts the rectified-flow velocity of every latent cell of a noisy clip."""

    def __init__(self, config: VideoDenoiserConfig):
        super().__init__()
        if isinstance(config, dict):
            config = VideoDenoiserConfig(**config)
        self.config = config
        self.backbone_config = backbone_config(config.preset, **config.backbone)
        dim = self.backbone_config.dim
        patch_dim = config.latent_channels * config.patch_size[0] * config.patch_size[1] * config.patch_size[2]
        self.patch_embed = nn.Linear(patch_dim, dim)
        self.backbone = build_backbone(self.backbone_config)
        self.head = nn.Linear(dim, patch_dim)
        nn.init.zeros_(self.head.weight)  # a fresh model predicts zero velocity (DiT's zero-initialised output)
        nn.init.zeros_(self.head.bias)

    @property
    def cells_per_frame(self) -> int:
        return self.config.latent_height * self.config.latent_width

    def cells_to_latent(self, cells: Tensor) -> Tensor:
        """``(B, F'·H'·W', C)`` raster-order cells -> latent ``(B, C, F', H', W')``."""
        batch, length, channels = cells.shape
        if length % self.cells_per_frame or channels != self.config.latent_channels:
            raise ValueError(
                f"expected cells (B, F'*{self.config.latent_height}*{self.config.latent_width}, "
                f"{self.config.latent_channels}), got {tuple(cells.shape)}"
            )
        return rearrange(cells, "b (f h w) c -> b c f h w", h=self.config.latent_height, w=self.config.latent_width)

    @staticmethod
    def latent_to_cells(latent: Tensor) -> Tensor:
        """Latent ``(B, C, F', H', W')`` -> ``(B, F'·H'·W', C)`` raster-order cells."""
        return rearrange(latent, "b c f h w -> b (f h w) c")

    def forward(
        self,
        x: Tensor,  # (B, N, C) noisy latent cells
        t: Tensor,  # (B,) or (B, N) timesteps in [0, 1]
        context: Tensor | None = None,  # (B, S, Dc)
        context_mask: Tensor | None = None,  # (B, S)
    ) -> Tensor:
        if t.dim() == 2 and bool((t == t[:, :1]).all()):
            t = t[:, 0]  # one timestep per clip: adaLN runs once per sample, not per token
        latent = self.cells_to_latent(x)  # (B, C, F', H', W')
        packed = pack(latent, self.config.patch_size)  # (B, L, P) with [nextline]/[nextframe] slots
        token_t = t if t.dim() == 1 else self._token_timesteps(t, latent.shape[2], packed)  # (B,) or (B, L)
        hidden = self.backbone(
            self.patch_embed(packed.tokens),
            token_t,
            packed.positions,
            packed.slot_kind,
            packed.key_mask,
            context=context,
            context_mask=context_mask,
        )  # (B, L, D)
        velocity = unpack_stacked(self.head(hidden), packed)  # (B, C, F', H', W')
        return self.latent_to_cells(velocity)  # (B, N, C)

    def _token_timesteps(self, t: Tensor, frames: int, packed: PackedBatch) -> Tensor:
        """Per-cell t ``(B, N)`` -> per-slot t ``(B, L)``: patch mean; placeholders copy the slot before."""
        grid = rearrange(t, "b (f h w) -> b 1 f h w", f=frames, h=self.config.latent_height)  # (B, 1, F', H', W')
        patch_t = pack(grid.to(torch.float32), self.config.patch_size).tokens.mean(dim=-1)  # (B, L)
        slots = torch.arange(patch_t.shape[1], device=t.device).expand_as(patch_t)  # (B, L)
        last_data = torch.where(packed.slot_kind == DATA, slots, torch.zeros_like(slots)).cummax(dim=1).values
        return torch.gather(patch_t, 1, last_data)  # (B, L)
