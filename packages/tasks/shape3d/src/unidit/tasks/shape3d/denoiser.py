"""Point-cloud velocity network: voxel tokens through the shared backbone (DiT-3D).

DiT-3D (Mo et al. 2023, §3) diffuses the points themselves: the noisy cloud is
voxelized into an average-coordinate grid, the grid is patchified with a
Conv3d into tokens, a DiT denoises the tokens, the output grid is
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

from dataclasses import dataclass, field

import torch
from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from unidit.backbones.build import build_backbone
from unidit.backbones.config import backbone_config
from unidit.backbones.layout import PackedBatch, pack, unpack_stacked
from unidit.backbones.slots import DATA
from unidit.tokenizers.voxels import Voxelizer


@dataclass
class PointDenoiserConfig:
    """Sizes of the point-cloud denoiser.

    Attributes:
        preset: backbone size preset (tiny, small, base, large).
        backbone: overrides of the preset's ``BackboneConfig`` fields.
        resolution: voxel grid side (DiT-3D uses 32).
        patch_size: Conv3d patch side; tokens = (resolution / patch_size)^3 plus placeholders.
        grid_channels: features per voxel that the head writes and points read back.
        point_hidden: width of the per-point MLP.
    """

    preset: str = "small"
    backbone: dict = field(default_factory=dict)
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


class PointCloudDenoiser(nn.Module, PyTorchModelHubMixin):
    """Predicts the rectified-flow velocity of every point of a noisy cloud."""

    def __init__(self, config: PointDenoiserConfig):
        super().__init__()
        if isinstance(config, dict):
            config = PointDenoiserConfig(**config)
        self.config = config
        self.backbone_config = backbone_config(config.preset, **config.backbone)
        dim = self.backbone_config.dim
        p, c = config.patch_size, config.grid_channels
        self.voxelizer = Voxelizer(resolution=config.resolution, normalize=True)
        # 3 averaged coordinates + 1 occupancy indicator per voxel (an empty voxel
        # and a voxel averaging to the origin would otherwise look alike).
        self.patch_embed = nn.Conv3d(4, dim, kernel_size=p, stride=p)
        self.backbone = build_backbone(self.backbone_config)
        self.head = nn.Linear(dim, c * p**3)
        self.point_mlp = nn.Sequential(
            nn.Linear(c + 3 + 1, config.point_hidden),
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
        batch, num_points, _ = x.shape
        if t.dim() == 2 and bool((t == t[:, :1]).all()):
            t = t[:, 0]  # one timestep per cloud: adaLN runs once per sample, not per token
        t_points = t[:, None].expand(batch, num_points) if t.dim() == 1 else t  # (B, N)
        features = torch.cat([x, x.new_ones(batch, num_points, 1), t_points[..., None].to(x.dtype)], dim=-1)
        grid, coords = self.voxelizer.voxelize(features, x)  # (B, 5, r, r, r), (B, N, 3)
        tokens = self.patch_embed(grid[:, :4])  # (B, D, g, g, g)
        packed = pack(tokens, 1)  # (B, L, D) with [nextline]/[nextframe] slots
        token_t = t if t.dim() == 1 else self._token_timesteps(grid[:, 3:], t, packed)  # (B,) or (B, L)
        hidden = self.backbone(
            packed.tokens,
            token_t,
            packed.positions,
            packed.slot_kind,
            packed.key_mask,
            context=context,
            context_mask=context_mask,
        )  # (B, L, D)
        out = unpack_stacked(self.head(hidden), packed, channels=self.head.out_features)  # (B, C·p³, g, g, g)
        p = self.config.patch_size
        out_grid = rearrange(out, "b (c p1 p2 p3) g h w -> b c (g p1) (h p2) (w p3)", p1=p, p2=p, p3=p)  # (B, C, r, r, r)
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
