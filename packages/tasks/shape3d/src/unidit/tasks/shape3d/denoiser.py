"""Point-cloud velocity network: voxel tokens through the shared backbone (DiT-3D).

DiT-3D (Mo et al. 2023, §3) diffuses the points themselves: the noisy cloud is
voxelized into an average-coordinate grid, the grid is cut into patches that a
linear layer embeds as tokens (DiT-3D's patchifying Conv3d, written as the
shared :class:`~unidit.backbones.latent_denoiser.LatentDenoiser`), a DiT denoises the tokens, the output grid is
unpatchified and devoxelized trilinearly back onto the noisy points. Here the
tokens go through unidit's layout (``[nextline]`` after each row,
``[nextframe]`` after each slice, Lumina-T2X) and the shared backbone, and a
small per-point MLP (the point branch of PVD, Zhou et al. 2021) reads the
devoxelized features together with each point's own coordinates, so the
velocity field is finer than the voxel grid.

Per-point timesteps (shape completion) become per-token timesteps by
averaging the points' t inside each patch; a patch with no points takes the
largest t of its cloud.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from unidit.backbones.latent_denoiser import DenoiserConfig, LatentDenoiser, SlotInputs, per_sample_if_uniform
from unidit.backbones.layout import PackedBatch, pack, unpack_stacked
from unidit.backbones.slots import DATA
from unidit.tokenizers.voxels import Voxelizer


@dataclass
class PointDenoiserConfig(DenoiserConfig):
    """Sizes of the point-cloud denoiser (``preset`` and ``backbone`` as in :class:`DenoiserConfig`).

    Attributes:
        resolution: voxel grid side (DiT-3D uses 32).
        patch_size: Conv3d patch side; tokens = (resolution / patch_size)^3 plus placeholders.
        grid_channels: features per voxel that the head writes and points read back.
        point_hidden: width of the per-point MLP.
    """

    resolution: int = 32
    patch_size: int = 4
    grid_channels: int = 16
    point_hidden: int = 64

    def __post_init__(self) -> None:
        if self.resolution % self.patch_size:
            lower = self.resolution - self.resolution % self.patch_size
            raise ValueError(
                f"resolution {self.resolution} must be divisible by patch_size {self.patch_size}: "
                f"the voxel grid is cut into cubes of side {self.patch_size} "
                f"(e.g. resolution {lower or self.patch_size} or {lower + self.patch_size})"
            )


class PointCloudDenoiser(LatentDenoiser, PyTorchModelHubMixin):
    """Predicts the rectified-flow velocity of every point of a noisy cloud."""

    def __init__(self, config: PointDenoiserConfig):
        config = PointDenoiserConfig.coerce(config)
        # 3 averaged coordinates + 1 occupancy indicator per voxel (an empty voxel
        # and a voxel averaging to the origin would otherwise look alike) in, grid features out.
        p = config.patch_size
        super().__init__(config.backbone_config(), channels=4, patch_size=(p, p, p),
                         out_channels=config.grid_channels, zero_head=False)
        self.config = config
        self.voxelizer = Voxelizer(resolution=config.resolution, normalize=True)
        self.point_mlp = nn.Sequential(
            nn.Linear(config.grid_channels + 3 + 1, config.point_hidden),
            nn.SiLU(),
            nn.Linear(config.point_hidden, config.point_hidden),
            nn.SiLU(),
            nn.Linear(config.point_hidden, 3),
        )
        nn.init.zeros_(self.point_mlp[-1].weight)  # a fresh model predicts zero velocity
        nn.init.zeros_(self.point_mlp[-1].bias)

    def forward(
        self,
        x: Tensor,  # (B, N, 3) noisy points
        t: Tensor,  # (B,) or (B, N) timesteps in [0, 1]
        context: Tensor | None = None,  # (B, S, Dc)
        context_mask: Tensor | None = None,  # (B, S)
    ) -> Tensor:
        slots = self.slots(x, t)
        out = self.forward_slots(slots.tokens, slots.t, slots.positions, slots.slot_kind, slots.key_mask,
                                 context, context_mask)  # (B, L, C·p³)
        return self.finish(out, slots)  # (B, N, 3)

    def slots(self, x: Tensor, t: Tensor) -> SlotInputs:
        """Voxelize the noisy cloud ``x`` (B, N, 3) and lay the grid out (the input of the backbone)."""
        batch, num_points, _ = x.shape
        t = per_sample_if_uniform(t)  # one timestep per cloud: adaLN runs once per sample, not per token
        t_points = t[:, None].expand(batch, num_points) if t.dim() == 1 else t  # (B, N)
        features = torch.cat([x, x.new_ones(batch, num_points, 1), t_points[..., None].to(x.dtype)], dim=-1)
        grid, coords = self.voxelizer.voxelize(features, x)  # (B, 5, r, r, r), (B, N, 3)
        packed = self.pack(grid[:, :4])  # (B, L, 4·p³) with [nextline]/[nextframe] slots
        token_t = t if t.dim() == 1 else self._token_timesteps(grid[:, 3:], t, packed)  # (B,) or (B, L)
        return SlotInputs(packed.tokens, token_t, packed.positions, packed.slot_kind, packed.key_mask,
                          (packed, coords, features))

    def finish(self, out: Tensor, slots: SlotInputs) -> Tensor:
        """Head outputs ``(B, L, C·p³)`` -> per-point velocities ``(B, N, 3)`` (devoxelize + point MLP)."""
        packed, coords, features = slots.state
        out_grid = unpack_stacked(out, packed, channels=self.out_channels)  # (B, C, r, r, r)
        point_features = self.voxelizer.devoxelize(out_grid, coords)  # (B, N, C)
        return self.point_mlp(torch.cat([point_features, features[..., :3], features[..., 4:]], dim=-1))  # (B, N, 3)

    def _token_timesteps(self, occupancy_and_t: Tensor, t: Tensor, packed: PackedBatch) -> Tensor:
        """Per-point t → per-token t: the occupancy-weighted mean t inside each patch.

        ``occupancy_and_t`` is (B, 2, r, r, r): voxel occupancy (0/1) and mean t.
        Patches without points and placeholder slots take the cloud's largest t.
        """
        p = self.config.patch_size
        occupancy, voxel_t = occupancy_and_t[:, 0], occupancy_and_t[:, 1]  # (B, r, r, r) each
        count = nn.functional.avg_pool3d(occupancy[:, None], p)[:, 0]  # (B, g, g, g)
        total = nn.functional.avg_pool3d((occupancy * voxel_t)[:, None], p)[:, 0]  # (B, g, g, g)
        largest = t.amax(dim=1)  # (B,)
        patch_t = torch.where(count > 0, total / count.clamp_min(1e-8), largest[:, None, None, None])
        token_t = pack(patch_t[:, None], 1).tokens[..., 0]  # (B, L)
        return torch.where(packed.slot_kind == DATA, token_t, largest[:, None])  # (B, L)
