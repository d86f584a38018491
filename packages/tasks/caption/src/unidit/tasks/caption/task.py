"""Image captioning as rectified flow on text latents (LaDiC, Wang et al. 2024).

The generated modality is text: a caption becomes ``(24, 384)`` normalised BERT
latents (:class:`~unidit.tokenizers.text_latent.TextLatentTokenizer`), the flow
runs on them, and the tokenizer's decoder reads the sampled latents back to
words. The condition is the picture: the backbone's context is the feature map
of an image encoder trained with the task, not text. Everything else — the
objective, EMA, the optimiser, the non-finite guard — is the shared
:class:`~unidit.training.flow_task.FlowMatchingTask`; its caption dropout drops
the *image* here (a dropped row gets the learned null image), which trains the
unconditional velocity for classifier-free guidance.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor
from unidit.backbones.guidance import GuidedModel
from unidit.tasks.caption.denoiser import CaptionDenoiser, CaptionDenoiserConfig, clean_estimate
from unidit.tokenizers.text_latent import TextLatentTokenizer, caption_latents
from unidit.training.flow_task import NULL_CAPTION, FlowInputs, FlowMatchingTask
from unidit.training.sampling import SamplingOptions


class CaptionTask(FlowMatchingTask):
    """Generates captions of ``(B, 3, H, W)`` pictures by diffusing their text latents.

    Args:
        text_latent: folder of a fitted text-latent tokenizer (a variant folder of
            ``unidit fit text-latent``, e.g. ``runs/text_latent/version_0/head``); needed to
            encode training captions and to decode samples.
        preset: backbone size preset (tiny, small, base, large).
        backbone: overrides of the preset, e.g. ``{"dim": 192, "depth": 4}``.
        latent_dim: channels of a text latent (checked against the tokenizer).
        length: latent positions per caption (checked against the tokenizer).
        image_size: side of the input pictures.
        image_grid: side of the image encoder's feature map (``image_grid²`` context tokens).
        image_channels: width of the image encoder's first convolution.
        self_condition_prob: probability of a self-conditioned training pass (LaDiC: 0.5).
        **flow_options: the shared options of ``FlowMatchingTask``; ``caption_dropout`` is the
            probability of dropping the image (CFG).
    """

    def __init__(
        self,
        text_latent: str | None = None,
        preset: str = "small",
        backbone: dict | None = None,
        latent_dim: int = 384,
        length: int = 24,
        image_size: int = 64,
        image_grid: int = 8,
        image_channels: int = 32,
        self_condition_prob: float = 0.5,
        **flow_options,
    ):
        super().__init__(**flow_options)
        self.save_hyperparameters()
        config = CaptionDenoiserConfig(
            preset=preset, backbone=dict(backbone or {}), latent_dim=latent_dim, length=length,
            image_size=image_size, image_grid=image_grid, image_channels=image_channels,
            self_condition_prob=self_condition_prob,
        )
        self.denoiser = CaptionDenoiser(config)
        self.text_latent = text_latent
        self._frozen: dict = {}  # the tokenizer and the caption latents: not submodules, never checkpointed
        self._latents: dict[str, Tensor] = {}  # caption -> (L, D) normalised latents
        self._batch_images: Tensor | None = None

    # -- the text-latent tokenizer ------------------------------------------------------
    def set_tokenizer(self, tokenizer: TextLatentTokenizer) -> None:
        """Use this (already loaded) tokenizer; its latent shape must match the denoiser's."""
        config = self.denoiser.config
        if (tokenizer.length, tokenizer.dim) != (config.length, config.latent_dim):
            raise ValueError(f"the text-latent tokenizer gives ({tokenizer.length}, {tokenizer.dim}) latents; the "
                             f"captioner was built for (model.length, model.latent_dim) = "
                             f"({config.length}, {config.latent_dim})")
        self._frozen["tokenizer"] = tokenizer.eval().requires_grad_(False)
        self._latents.clear()

    @property
    def tokenizer(self) -> TextLatentTokenizer:
        """The frozen text-latent tokenizer named by ``text_latent`` (loaded on first use)."""
        if "tokenizer" not in self._frozen:
            if self.text_latent is None:
                raise ValueError("model.text_latent is None: the captioner needs a fitted text-latent tokenizer "
                                 "(a variant folder of `unidit fit text-latent`, e.g. runs/text_latent/version_0/head)")
            folder = self.text_latent
            if not os.path.isfile(os.path.join(folder, "config.json")):
                raise FileNotFoundError(f"model.text_latent {folder}: no config.json there; expected a text-latent "
                                        "tokenizer folder (<run>/head or <run>/upper of `unidit fit text-latent`)")
            self.set_tokenizer(TextLatentTokenizer.from_pretrained(folder))
        return self._frozen["tokenizer"]

    # -- caption latents ------------------------------------------------------------------
    def warm_latents(self, captions: Sequence[str], cache_dir: str | os.PathLike | None = None) -> None:
        """Encode every distinct caption of ``captions`` once (lower BERT layers cached on disk in ``cache_dir``)."""
        missing = sorted({c for c in captions if c not in self._latents})
        if not missing:
            return
        tokenizer = self.tokenizer
        encoded = caption_latents(tokenizer, missing, cache_dir=cache_dir)  # distinct token rows
        normalised = (encoded.raw - tokenizer.latent_mean) / tokenizer.latent_std  # (N, L, D)
        row = {tuple(ids): k for k, ids in enumerate(encoded.ids.tolist())}
        for text, ids in zip(missing, tokenizer.token_ids(missing).tolist()):
            self._latents[text] = normalised[row[tuple(ids)]]

    def caption_latents(self, captions: Sequence[str]) -> Tensor:
        """``(B, L, D)`` normalised latents of ``captions`` (encoded on a miss, then kept)."""
        self.warm_latents(captions)
        return torch.stack([self._latents[c] for c in captions]).to(self.device)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        data = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and hasattr(data, "split_captions"):
            for split in ("train", "val"):
                self.warm_latents(data.split_captions(split), data.latent_cache)

    # -- what the shared training step reads ------------------------------------------------
    def flow_inputs(self, batch: dict) -> FlowInputs:
        images = batch["image"]  # (B, 3, H, W)
        captions = list(batch["caption"])
        if images.shape[0] != len(captions):
            raise ValueError(f"batch: {images.shape[0]} images but {len(captions)} captions")
        self._batch_images = images.to(self.device)
        return FlowInputs(x0=self.caption_latents(captions), captions=captions)

    def encode_captions(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """The context of the current batch: its images' tokens, the null image where the caption was dropped.

        The shared step calls this with the batch's captions after caption dropout; the
        network that encodes is the one that denoises (trained weights in training, EMA otherwise).
        """
        if self._batch_images is None or self._batch_images.shape[0] != len(captions):
            raise RuntimeError("encode_captions: no images of this batch; call flow_inputs(batch) first")
        network = self.denoiser if self.training else self.sampling_network()
        keep = torch.tensor([c != NULL_CAPTION for c in captions], dtype=torch.bool)  # (B,)
        return network.image_context(self._batch_images, keep)

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample_latents(self, images: Tensor, options: SamplingOptions | None = None, *,
                       use_ema: bool = True, self_condition: bool = True) -> Tensor:
        """``(B, 3, H, W)`` pictures in [-1, 1] -> ``(B, L, D)`` clean text latents.

        Each network call reads the previous call's clean estimate (self-conditioning;
        zeros at the first step or when ``self_condition`` is False). With
        ``options.cfg_scale != 1`` the image and null-image velocities come from one
        doubled batch, each half keeping its own estimate.
        """
        options = options or SamplingOptions()
        if images.dim() != 4:
            raise ValueError(f"images: expected (B, 3, H, W) pictures, got {tuple(images.shape)}")
        network = self.sampling_network(use_ema)
        config = network.config
        images = images.to(self.device)
        batch = images.shape[0]
        context, mask = network.image_context(images)  # (B, S, Dc), (B, S)
        guided = options.cfg_scale != 1.0
        if guided:
            null, null_mask = network.null_image_context(batch)
            context, mask = torch.cat([context, null]), torch.cat([mask, null_mask])  # (2B, S, Dc), (2B, S)
        state: dict[str, Tensor | None] = {"estimate": None}

        def velocity(x_t: Tensor, t: Tensor) -> Tensor:  # x_t (B or 2B, L, D)
            estimate = state["estimate"] if self_condition else None
            v = network(x_t, t, context, mask, self_cond=estimate)
            state["estimate"] = clean_estimate(x_t, t, v)
            return v

        model = GuidedModel(velocity, scale=options.cfg_scale, rescale_phi=options.cfg_rescale) if guided else velocity
        g = torch.Generator().manual_seed(options.seed)
        noise = torch.randn(batch, config.length, config.latent_dim, generator=g).to(self.device)  # (B, L, D)
        return self.flow.sample(model, noise, steps=options.steps, sampler=options.sampler, shift=options.shift)

    def sample_captions(self, images: Tensor, options: SamplingOptions | None = None, **kwargs) -> list[str]:
        """Captions of ``(B, 3, H, W)`` pictures: sampled latents decoded by the text-latent tokenizer."""
        latents = self.sample_latents(images, options, **kwargs)  # (B, L, D)
        tokenizer = self.tokenizer.to(latents.device)
        return tokenizer.decode(latents)
