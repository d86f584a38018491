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

from dataclasses import dataclass

from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor
from unidit.backbones.latent_denoiser import (
    DenoiserConfig, LatentDenoiser, SlotInputs, per_sample_if_uniform, slot_times,
)
from unidit.backbones.layout import unpack_stacked


@dataclass
class VideoDenoiserConfig(DenoiserConfig):
    """Sizes of the video-latent denoiser (``preset`` and ``backbone`` as in :class:`DenoiserConfig`).

    Attributes:
        latent_channels: channels of the VAE latent.
        latent_height: latent rows ``H'`` (frame height / VAE spatial compression).
        latent_width: latent columns ``W'``.
        patch_size: ``(frames, rows, cols)`` of a patch in latent cells.
    """

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


class VideoLatentDenoiser(LatentDenoiser, PyTorchModelHubMixin):
    """Predicts the rectified-flow velocity of every latent cell of a noisy clip."""

    def __init__(self, config: VideoDenoiserConfig):
        config = VideoDenoiserConfig.coerce(config)
        super().__init__(config.backbone_config(), config.latent_channels, config.patch_size)
        self.config = config

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
        slots = self.slots(x, t)
        out = self.forward_slots(slots.tokens, slots.t, slots.positions, slots.slot_kind, slots.key_mask,
                                 context, context_mask)  # (B, L, P)
        return self.finish(out, slots)  # (B, N, C)

    def slots(self, x: Tensor, t: Tensor) -> SlotInputs:
        """Raster-order cells ``x`` (B, N, C) laid out as frames of patches with placeholders."""
        t = per_sample_if_uniform(t)  # one timestep per clip: adaLN runs once per sample, not per token
        latent = self.cells_to_latent(x)  # (B, C, F', H', W')
        packed = self.pack(latent)  # (B, L, P) with [nextline]/[nextframe] slots
        if t.dim() == 2:
            t = slot_times(rearrange(t, "b (f h w) -> b f h w", f=latent.shape[2], h=self.config.latent_height),
                           packed)  # (B, L)
        return SlotInputs(packed.tokens, t, packed.positions, packed.slot_kind, packed.key_mask, (packed,))

    def finish(self, out: Tensor, slots: SlotInputs) -> Tensor:
        """Head outputs ``(B, L, P)`` -> velocity cells ``(B, N, C)``."""
        velocity = unpack_stacked(out, slots.state[0])  # (B, C, F', H', W')
        return self.latent_to_cells(velocity)  # (B, N, C)
