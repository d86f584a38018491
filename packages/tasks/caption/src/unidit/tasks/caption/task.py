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

**Where the flow trains.** Text latents are decided at high noise: a caption's
24 positions each carry 384 unit-variance channels, so a word can still be read
from its noisy latent alone far into the flow. On the embedded scenes a nearest-
word readout of one position (``x_t / (1 − t)`` against each word's mean latent)
names 97 % of the words at ``t = 0.7``, 91 % at 0.8, 75 % at 0.85, 41 % at 0.9
and 13 % at 0.95; below ``t ≈ 0.85`` the picture has little left to decide. The
shared density of SD3 (logit-normal, no shift) draws only 4 % of its training
times above 0.85, so the image encoder gets almost no signal. Text diffusion
models move training towards noise for this reason: Diffusion-LM (Li et al.
2022, §4.2) with its sqrt schedule, CDCD (Dieleman et al. 2022, §3.2) and Plaid
(Gulrajani & Hashimoto 2023, §3.3) with a learned time warp. The captioner uses
SD3's time shift (§5.3.2) with :data:`TIME_SHIFT` (half of its training times
above 0.85), in training and, unless ``--report.shift`` says otherwise, in
sampling.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor
from unidit.backbones.guidance import GuidedModel
from unidit.backbones.held_tokens import Conditioning
from unidit.tasks.caption.denoiser import CaptionDenoiser, CaptionDenoiserConfig
from unidit.tasks.caption.objective import caption_losses
from unidit.tasks.caption.refine import least_confident, renoised_conditioning, token_confidence
from unidit.tasks.caption.tokenizer_folder import open_text_latent
from unidit.tokenizers.text_latent import TextLatentTokenizer, caption_latents
from unidit.training.flow_task import NULL_CAPTION, FlowInputs, FlowMatchingTask
from unidit.training.sampling import SamplingOptions

TIME_SHIFT = 6.0  # training and default sampling shift: CIDEr-D 0.28 / 0.49 / 0.54 at 1 / 3 / 6 (docs/tasks/caption.md)


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
        image_encoder: ``"conv"`` (trained with the task, the default), ``"hf:<id or folder>"`` (a frozen
            Hugging Face vision model) or ``"video-vae:<folder>"`` (a frozen unidit video VAE on one frame).
        prediction: what the denoiser outputs, ``"x0"`` (LaDiC; the default, see
            :mod:`unidit.tasks.caption.denoiser` for why) or ``"velocity"``.
        ce_weight: weight of the token cross-entropy of the clean estimate (LaDiC: 0.2 with x0; 0 = off).
        hold_prob: probability that a training caption holds a random subset of its positions clean
            (trains the in-filling that Back&Refine sampling uses; 0 = off).
        time_shift: SD3's time shift of the logit-normal training times, also the default sampling
            shift; the captioner's default :data:`TIME_SHIFT` spends most of training at high noise,
            where words are decided (see the module docstring; 1 = the shared density).
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
        image_encoder: str = "conv",
        prediction: str = "x0",
        ce_weight: float = 0.0,
        hold_prob: float = 0.0,
        time_shift: float = TIME_SHIFT,
        **flow_options,
    ):
        super().__init__(time_shift=time_shift, **flow_options)
        if ce_weight < 0 or not 0.0 <= hold_prob <= 1.0:
            raise ValueError(f"ce_weight {ce_weight}, hold_prob {hold_prob}: expected ce_weight >= 0 and a "
                             "probability hold_prob in [0, 1]")
        self.save_hyperparameters()
        config = CaptionDenoiserConfig(
            preset=preset, backbone=dict(backbone or {}), latent_dim=latent_dim, length=length,
            image_size=image_size, image_grid=image_grid, image_channels=image_channels,
            self_condition_prob=self_condition_prob, prediction=prediction, image_encoder=image_encoder,
        )
        self.ce_weight, self.hold_prob = float(ce_weight), float(hold_prob)
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
            self.set_tokenizer(open_text_latent(self.text_latent))
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
        x0 = self.caption_latents(captions)  # (B, L, D)
        return FlowInputs(x0=x0, captions=captions, cond=self._held_positions(x0) if self.training else None)

    def _held_positions(self, x0: Tensor) -> Conditioning | None:
        """With ``hold_prob``, a random subset of some captions' positions held clean (global RNG: checkpointed)."""
        if self.hold_prob <= 0:
            return None
        batch, length = x0.shape[:2]
        chosen = torch.rand(batch) < self.hold_prob  # (B,) captions that hold some positions
        rate = torch.rand(batch, 1)  # (B, 1) the share of positions each holds
        held = (torch.rand(batch, length) < rate) & chosen[:, None]  # (B, L)
        held &= ~held.all(dim=1, keepdim=True)  # a caption with every position held holds none
        return Conditioning(x=x0, mask=held.to(x0.device)) if bool(held.any()) else None

    # -- the losses (plain velocity matching is the shared step's) ----------------------------
    def training_step(self, batch: dict, batch_idx: int) -> Tensor | None:
        if self.denoiser.config.prediction == "velocity" and self.ce_weight == 0:
            return super().training_step(batch, batch_idx)
        inputs = self.flow_inputs(batch)
        context, context_mask = self.encode_captions(self.drop_captions(inputs.captions))
        tokenizer = self.tokenizer.to(self.device)
        losses = caption_losses(self.denoiser, self.flow, inputs, context, context_mask, tokenizer,
                                tokenizer.token_ids(inputs.captions), self.ce_weight)
        if losses.token_ce is not None:
            self.log("train/token_ce", losses.token_ce.detach(), batch_size=inputs.x0.shape[0])
        return self.guarded_loss(losses.total, inputs.x0.shape[0])

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        """The velocity error of the EMA network, whatever it predicts (so runs of either prediction compare)."""
        if self.denoiser.config.prediction == "velocity":
            return super().validation_step(batch, batch_idx)
        inputs = self.flow_inputs(batch)
        context, context_mask = self.encode_captions(inputs.captions)
        network = self.sampling_network()
        generator = torch.Generator(device=inputs.x0.device).manual_seed(batch_idx)
        loss = self.flow.loss(lambda x, t: network.as_velocity(x, t, network(x, t, context, context_mask)),
                              inputs.x0, generator=generator)
        self.log("val/loss", loss, prog_bar=True, batch_size=inputs.x0.shape[0])
        return loss

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
    def sample_latents(self, images: Tensor, options: SamplingOptions | None = None, **kwargs) -> Tensor:
        """``(B, 3, H, W)`` pictures in [-1, 1] -> ``(B, L, D)`` clean text latents (see :meth:`sample_from_context`)."""
        if images.dim() != 4:
            raise ValueError(f"images: expected (B, 3, H, W) pictures, got {tuple(images.shape)}")
        network = self.sampling_network(kwargs.get("use_ema", True))
        context, mask = network.image_context(images.to(self.device))  # (B, S, Dc), (B, S)
        return self.sample_from_context(context, mask, options, **kwargs)

    @torch.no_grad()
    def sample_from_context(self, context: Tensor, mask: Tensor | None = None,
                            options: SamplingOptions | None = None, *, use_ema: bool = True,
                            self_condition: bool = True, refine_fraction: float = 0.0,
                            refine_rounds: int = 1) -> Tensor:
        """Image tokens ``(B, S, Dc)`` (mask ``(B, S)``) -> ``(B, L, D)`` clean text latents.

        The context need not come from a picture: any features in the image encoder's
        output space will do (e.g. features predicted from brain activity). Each network
        call reads the previous call's clean estimate (self-conditioning; zeros at the
        first step or when ``self_condition`` is False). With ``options.cfg_scale != 1``
        the image and null-image velocities come from one doubled batch, each half
        keeping its own estimate. ``refine_fraction > 0`` adds ``refine_rounds`` of
        Back&Refine (:mod:`unidit.tasks.caption.refine`): the least confident positions
        are generated again with the others held clean.
        """
        options = options or SamplingOptions()
        network = self.sampling_network(use_ema)
        config = network.config
        if context.dim() != 3 or context.shape[1:] != network.null_context.shape:
            raise ValueError(f"context: expected (B, {network.null_context.shape[0]}, {network.null_context.shape[1]}) "
                             f"image tokens, got {tuple(context.shape)}")
        context = context.to(self.device)
        batch = context.shape[0]
        if mask is None:
            mask = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)  # (B, S)
        mask = mask.to(self.device)
        guided = options.cfg_scale != 1.0
        if guided:
            null, null_mask = network.null_image_context(batch)
            context, mask = torch.cat([context, null]), torch.cat([mask, null_mask])  # (2B, S, Dc), (2B, S)
        g = torch.Generator().manual_seed(options.seed)

        def integrate(start: Tensor, cond: Conditioning | None) -> Tensor:
            state: dict[str, Tensor | None] = {"estimate": None}

            def velocity(x_t: Tensor, t: Tensor) -> Tensor:  # x_t (B or 2B, L, D); t (B or 2B,) or (.., L)
                estimate = state["estimate"] if self_condition else None
                out = network(x_t, t, context, mask, self_cond=estimate)
                state["estimate"] = network.clean_estimate(x_t, t, out)
                return network.as_velocity(x_t, t, out)

            model = GuidedModel(velocity, scale=options.cfg_scale, rescale_phi=options.cfg_rescale,
                                mask=None if cond is None else cond.generated()) if guided else velocity
            return self.flow.sample(model, start, steps=options.steps, sampler=options.sampler, cond=cond,
                                    shift=options.shift)

        noise = torch.randn(batch, config.length, config.latent_dim, generator=g).to(self.device)  # (B, L, D)
        latents = integrate(noise, None)
        if refine_fraction > 0:
            tokenizer = self.tokenizer.to(latents.device)
            for _ in range(refine_rounds):
                renoise = least_confident(token_confidence(tokenizer, latents), refine_fraction)  # (B, L)
                cond = renoised_conditioning(latents, renoise, g)
                latents = integrate(cond.x, cond)
        return latents

    def sample_captions(self, images: Tensor, options: SamplingOptions | None = None, **kwargs) -> list[str]:
        """Captions of ``(B, 3, H, W)`` pictures: sampled latents decoded by the text-latent tokenizer."""
        return self.decode_latents(self.sample_latents(images, options, **kwargs))

    def captions_from_context(self, context: Tensor, options: SamplingOptions | None = None, **kwargs) -> list[str]:
        """Captions of image tokens ``(B, S, Dc)`` given directly (see :meth:`sample_from_context`)."""
        return self.decode_latents(self.sample_from_context(context, None, options, **kwargs))

    def decode_latents(self, latents: Tensor) -> list[str]:
        """``(B, L, D)`` normalised text latents -> captions, by the frozen tokenizer's decoder."""
        return self.tokenizer.to(latents.device).decode(latents)
