"""Text-to-3D-shape as a rectified-flow task over point clouds (DiT-3D)."""

from __future__ import annotations

import torch
from torch import Tensor
from unidit.backbones.rectified_flow import Conditioning
from unidit.tasks.shape3d.denoiser import PointCloudDenoiser, PointDenoiserConfig
from unidit.training.flow_task import FlowInputs, FlowMatchingTask
from unidit.training.sampling import SamplingOptions


class Shape3DTask(FlowMatchingTask):
    """Generates 2048-point clouds from captions; completes partial clouds.

    Args:
        preset: backbone size preset (tiny, small, base, large).
        backbone: overrides of the preset, e.g. ``{"arch": "mmdit", "depth": 8}``.
        resolution: voxel grid side.
        patch_size: Conv3d patch side.
        grid_channels: per-voxel output features read back by each point.
        point_hidden: width of the per-point MLP.
        completion_prob: fraction of training clouds where a random half-space of
            points is held clean (per-token t = 0), teaching shape completion.
        **flow_options: the shared training options of ``FlowMatchingTask``
            (lr, warm-up, EMA, caption dropout, timestep density, text encoder, ...).
    """

    def __init__(
        self,
        preset: str = "small",
        backbone: dict | None = None,
        resolution: int = 32,
        patch_size: int = 4,
        grid_channels: int = 16,
        point_hidden: int = 64,
        completion_prob: float = 0.1,
        **flow_options,
    ):
        super().__init__(**flow_options)
        self.save_hyperparameters()
        config = PointDenoiserConfig(
            preset=preset,
            backbone=dict(backbone or {}),
            resolution=resolution,
            patch_size=patch_size,
            grid_channels=grid_channels,
            point_hidden=point_hidden,
        )
        self.denoiser = PointCloudDenoiser(config)
        self.completion_prob = completion_prob
        self._completion_rng = torch.Generator().manual_seed(0)

    def flow_inputs(self, batch: dict) -> FlowInputs:
        points = batch["points"]  # (B, N, 3)
        cond = None
        if self.training and self.completion_prob > 0:
            cond = self._random_completion(points)
        return FlowInputs(x0=points, captions=list(batch["caption"]), cond=cond)

    def _random_completion(self, points: Tensor) -> Conditioning | None:
        """Hold the points on one side of a random plane clean for some clouds."""
        batch = points.shape[0]
        g = self._completion_rng
        chosen = torch.rand(batch, generator=g) < self.completion_prob  # (B,)
        if not bool(chosen.any()):
            return None
        direction = torch.nn.functional.normalize(torch.randn(batch, 3, generator=g), dim=-1)  # (B, 3)
        height = torch.einsum("bnc,bc->bn", points.cpu(), direction)  # (B, N)
        keep = torch.rand(batch, 1, generator=g) * 0.4 + 0.3  # (B, 1) fraction held clean
        threshold = torch.quantile(height, 1.0 - keep.squeeze(1), dim=1).diagonal()  # (B,)
        mask = (height > threshold[:, None]) & chosen[:, None]  # (B, N)
        return Conditioning(x=points, mask=mask.to(points.device), strength=1.0)

    @torch.no_grad()
    def sample_clouds(
        self,
        captions: list[str],
        num_points: int = 2048,
        *,
        options: SamplingOptions | None = None,
        partial: Tensor | None = None,
        use_ema: bool = True,
        callback=None,
    ) -> Tensor:
        """Generate (B, num_points, 3) clouds drawn with ``options``; with ``partial`` (B, M, 3) keep
        those points fixed (per-token t = 0) as the first M points and generate the other ``num_points − M``."""
        options = options or SamplingOptions()
        if not captions:
            raise ValueError("sample_clouds needs at least one caption")
        g = torch.Generator().manual_seed(options.seed)
        noise = torch.randn(len(captions), num_points, 3, generator=g).to(self.device)  # (B, N, 3)
        cond = None
        if partial is not None:
            known = partial.shape[1]
            if known >= num_points:
                raise ValueError(f"partial cloud has {known} points; need fewer than num_points={num_points}")
            mask = (torch.arange(num_points, device=noise.device) < known).expand(len(captions), -1)  # (B, N)
            padded = torch.nn.functional.pad(partial.to(noise), (0, 0, 0, num_points - known))  # (B, N, 3)
            cond = Conditioning.held_at(padded, mask, noise)
            noise = cond.x
        return self.generate(captions, noise, options, cond=cond, use_ema=use_ema, callback=callback)
