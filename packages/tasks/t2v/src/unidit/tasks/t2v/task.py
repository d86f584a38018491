"""Text-to-video, image-to-video and video extension as one rectified-flow task (LTX-Video).

The objective diffuses normalised latents of a frozen causal video VAE.
Because the VAE encodes the first frame alone (HaCohen et al. 2024, §2.1),
latent frame 0 of any clip equals the latent of its first frame encoded as a
one-frame clip; so image-to-video is "hold latent frame 0 clean" and
extension is "hold the first latent frames clean", both with per-token
timesteps ``t = 0`` on the held tokens (LTX-Video §3.4).  Training holds
frame 0 for a fraction of clips and a random prefix for another fraction, so
one network does all three.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor
from unidit.backbones.rectified_flow import Conditioning
from unidit.tasks.t2v.denoiser import VideoDenoiserConfig, VideoLatentDenoiser
from unidit.tokenizers.video_vae import VideoVAE
from unidit.training.export import load_task
from unidit.training.flow_task import FlowInputs, FlowMatchingTask, check_mixture
from unidit.training.sampling import SamplingOptions

VAE_FOLDER = "vae"  # an export directory may carry its VAE here (see load_t2v_task)


class T2VTask(FlowMatchingTask):
    """Generates clips from captions; continues a first frame (I2V) or the start of a clip.

    Args:
        vae: folder of a saved :class:`~unidit.tokenizers.video_vae.VideoVAE` (``save_pretrained``);
            needed to decode samples and to encode conditioning images / clips.
        preset: backbone size preset (tiny, small, base, large).
        backbone: overrides of the preset, e.g. ``{"arch": "mmdit", "depth": 8}``.
        latent_channels: VAE latent channels (checked against the VAE when it is loaded).
        latent_height: latent rows = frame height / VAE spatial compression.
        latent_width: latent columns.
        patch_size: ``[frames, rows, cols]`` of a token's patch in latent cells.
        first_frame_prob: fraction of training clips whose first latent frame is held clean (I2V).
        prefix_prob: fraction of training clips whose first 2 .. F'-1 latent frames are held (extension).
        **flow_options: the shared options of ``FlowMatchingTask`` (lr, EMA, caption dropout, ...).
    """

    def __init__(
        self,
        vae: str | None = None,
        preset: str = "small",
        backbone: dict | None = None,
        latent_channels: int = 16,
        latent_height: int = 8,
        latent_width: int = 8,
        patch_size: list[int] | None = None,
        first_frame_prob: float = 0.15,
        prefix_prob: float = 0.1,
        **flow_options,
    ):
        super().__init__(**flow_options)
        self.save_hyperparameters()
        check_mixture(first_frame_prob=first_frame_prob, prefix_prob=prefix_prob)
        config = VideoDenoiserConfig(
            preset=preset,
            backbone=dict(backbone or {}),
            latent_channels=latent_channels,
            latent_height=latent_height,
            latent_width=latent_width,
            patch_size=tuple(patch_size or (1, 2, 2)),
        )
        self.denoiser = VideoLatentDenoiser(config)
        self.vae_path = vae
        self.first_frame_prob = first_frame_prob
        self.prefix_prob = prefix_prob
        self._conditioning_rng = torch.Generator().manual_seed(0)
        self.__dict__["_vae"] = None  # frozen, outside the module tree: never trained or checkpointed

    # -- the frozen VAE ---------------------------------------------------------------
    @property
    def vae(self) -> VideoVAE:
        """The frozen VAE, loaded from ``vae_path`` on first use and checked against the denoiser."""
        vae = self.__dict__["_vae"]
        if vae is None:
            if self.vae_path is None:
                raise ValueError("T2VTask has no VAE: pass model.vae (a VideoVAE folder saved with save_pretrained)")
            vae = load_vae(self.vae_path)
            self.check_vae(vae)
            self.__dict__["_vae"] = vae
        return vae.to(self.device)

    def set_vae(self, vae: VideoVAE | str | os.PathLike) -> None:
        """Use this VAE (a module or a saved folder) from now on."""
        if not isinstance(vae, VideoVAE):
            self.vae_path = str(vae)
            vae = load_vae(vae)
        self.check_vae(vae)
        self.__dict__["_vae"] = vae.eval().requires_grad_(False)

    def check_vae(self, vae: VideoVAE) -> None:
        """Raise if the VAE's latent channels differ from the denoiser's."""
        config = self.denoiser.config
        if vae.latent_channels != config.latent_channels:
            raise ValueError(
                f"the VAE at {self.vae_path} has {vae.latent_channels} latent channels but the denoiser was built "
                f"for {config.latent_channels}; set model.latent_channels to {vae.latent_channels}"
            )

    @property
    def frame_size(self) -> tuple[int, int]:
        """Pixel height and width of the clips (latent grid x VAE spatial compression)."""
        s = self.vae.spatial_compression
        return self.denoiser.config.latent_height * s, self.denoiser.config.latent_width * s

    # -- training -----------------------------------------------------------------------
    def flow_inputs(self, batch: dict) -> FlowInputs:
        latents = batch["latents"]  # (B, C, F', H', W') normalised VAE latents
        cells = self.denoiser.latent_to_cells(latents)  # (B, N, C)
        cond = None
        if self.training and self.first_frame_prob + self.prefix_prob > 0:
            held = self._random_held_frames(latents.shape[0], latents.shape[2])  # (B,) frames held
            if bool((held > 0).any()):
                cond = Conditioning(x=cells, mask=self._prefix_mask(held, latents.shape[2]).to(cells.device))
        return FlowInputs(x0=cells, captions=list(batch["caption"]), cond=cond)

    def _random_held_frames(self, batch: int, frames: int) -> Tensor:
        """Latent frames held clean per clip ``(B,)``: 1 (I2V), 2 .. F'-1 (extension) or 0."""
        g = self._conditioning_rng
        draw = torch.rand(batch, generator=g)  # (B,)
        prefix = torch.randint(2, max(frames, 3), (batch,), generator=g).clamp(max=max(frames - 1, 1))  # (B,)
        held = torch.zeros(batch, dtype=torch.long)
        held = torch.where(draw < self.first_frame_prob, torch.ones_like(held), held)
        extend = (draw >= self.first_frame_prob) & (draw < self.first_frame_prob + self.prefix_prob)
        return torch.where(extend & (frames > 2), prefix, held)  # (B,)

    def _prefix_mask(self, held: Tensor, frames: int) -> Tensor:
        """``(B, N)`` bool: the cells of each clip's first ``held[b]`` latent frames."""
        frame_of_cell = torch.arange(frames).repeat_interleave(self.denoiser.cells_per_frame)  # (N,)
        return frame_of_cell[None, :] < held[:, None].cpu()  # (B, N)

    # -- sampling -------------------------------------------------------------------------
    @torch.no_grad()
    def encode_video(self, video: np.ndarray | Tensor) -> Tensor:
        """uint8 clips ``(B, F, H, W, 3)`` -> normalised latents ``(B, C, F', H', W')`` (posterior mean)."""
        video = video if isinstance(video, Tensor) else torch.from_numpy(np.array(video, dtype=np.uint8))
        if video.dim() != 5 or video.shape[-1] != 3:
            raise ValueError(f"expected uint8 clips (B, F, H, W, 3), got shape {tuple(video.shape)}")
        height, width = self.frame_size
        if tuple(video.shape[2:4]) != (height, width):
            raise ValueError(f"clips must be {height}x{width} pixels for this model, got {tuple(video.shape[2:4])}")
        pixels = rearrange(video.to(self.device).float() / 127.5 - 1.0, "b f h w c -> b c f h w")
        return self.vae.encode_latents(pixels)  # (B, C, F', H', W')

    @torch.no_grad()
    def decode_latents(self, latents: Tensor) -> np.ndarray:
        """Normalised latents ``(B, C, F', H', W')`` -> uint8 clips ``(B, F, H, W, 3)``."""
        pixels = self.vae.decode_latents(latents.to(self.device))  # (B, 3, F, H, W) in [-1, 1]
        frames = ((pixels + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return rearrange(frames, "b c f h w -> b f h w c").cpu().numpy()

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames of a clip of ``num_frames`` pixel frames (1 + k * temporal compression)."""
        tc = self.vae.temporal_compression
        if num_frames < 1 or (num_frames - 1) % tc:
            raise ValueError(f"num_frames must be 1 + k*{tc} for this VAE (e.g. {1 + 4 * tc}), got {num_frames}")
        return 1 + (num_frames - 1) // tc

    @torch.no_grad()
    def sample_latents(
        self,
        captions: list[str],
        *,
        num_frames: int = 17,
        options: SamplingOptions | None = None,
        image: np.ndarray | None = None,
        extend: np.ndarray | None = None,
        use_ema: bool = True,
    ) -> Tensor:
        """Normalised latents ``(B, C, F', H', W')`` for ``captions``, drawn with ``options``.

        ``image``: uint8 ``(H, W, 3)`` or ``(B, H, W, 3)`` first frame(s), encoded as one-frame clips and
        held as latent frame 0.  ``extend``: uint8 ``(F0, H, W, 3)`` or ``(B, F0, H, W, 3)`` with
        ``F0 = 1 + k * tc`` frames, encoded and held as the first ``1 + k`` latent frames (fewer than
        the output's).  Held latents come out bit for bit as encoded.
        """
        options = options or SamplingOptions()
        if image is not None and extend is not None:
            raise ValueError("give either image (image-to-video) or extend (video extension), not both")
        batch, frames = len(captions), self.latent_frames(num_frames)
        config = self.denoiser.config
        g = torch.Generator().manual_seed(options.seed)
        noise = torch.randn(batch, frames * self.denoiser.cells_per_frame, config.latent_channels, generator=g)
        noise = noise.to(self.device)  # (B, N, C)
        cond = None
        prefix_clip = np.asarray(image)[..., None, :, :, :] if image is not None else extend  # (…, F0, H, W, 3)
        if prefix_clip is not None:
            prefix_clip = np.asarray(prefix_clip)
            if prefix_clip.ndim == 4:
                prefix_clip = np.broadcast_to(prefix_clip[None], (batch, *prefix_clip.shape))
            if prefix_clip.shape[0] != batch:
                raise ValueError(f"got {prefix_clip.shape[0]} conditioning clips for {batch} captions")
            prefix = self.encode_video(np.ascontiguousarray(prefix_clip))  # (B, C, k, H', W')
            held = prefix.shape[2]
            if held >= frames:
                raise ValueError(
                    f"the conditioning clip covers {held} latent frames; the output has only {frames} "
                    f"(num_frames={num_frames}): give a shorter clip or more frames"
                )
            known = torch.nn.functional.pad(prefix, (0, 0, 0, 0, 0, frames - held))  # (B, C, F', H', W')
            mask = self._prefix_mask(torch.full((batch,), held), frames).to(self.device)  # (B, N)
            cond = Conditioning.held_at(self.denoiser.latent_to_cells(known), mask, noise)
            noise = cond.x
        cells = self.generate(captions, noise, options, cond=cond, use_ema=use_ema)  # (B, N, C)
        return self.denoiser.cells_to_latent(cells)

    @torch.no_grad()
    def sample_videos(self, captions: list[str], **options) -> np.ndarray:
        """uint8 clips ``(B, F, H, W, 3)``; keyword arguments as :meth:`sample_latents`
        (num_frames, options, image, extend)."""
        return self.decode_latents(self.sample_latents(captions, **options))


def load_vae(path: str | os.PathLike) -> VideoVAE:
    """A frozen :class:`VideoVAE` from a ``save_pretrained`` folder, with a clear error if it is missing."""
    folder = Path(path)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"video VAE not found at {folder}: expected config.json and model.safetensors "
            "(a folder written by VideoVAE.save_pretrained, e.g. <video-vae run>/model)"
        )
    return VideoVAE.from_pretrained(folder).eval().requires_grad_(False)


def load_t2v_task(path: str | os.PathLike) -> T2VTask:
    """A :class:`T2VTask` from an export directory or a Lightning checkpoint.

    An export directory that carries its VAE in ``<export>/vae`` uses that
    copy, so the folder works wherever it is moved; otherwise the VAE path
    recorded at training time is used.
    """
    task = load_task(T2VTask, path)
    bundled = Path(path) / VAE_FOLDER
    if bundled.is_dir():
        task.set_vae(bundled)
    return task.eval()
