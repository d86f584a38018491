"""Training the autoregressive baseline captioner: teacher-forced next-token cross-entropy.

The baseline the diffusion captioner is measured against (LaDiC, Wang et al.
2024, §4.3 compares with autoregressive decoders). It trains on the same
:class:`~unidit.tasks.caption.datamodule.CaptionData` batches with the shared
optimiser, EMA and checkpointing of :class:`~unidit.training.trained_task.TrainedTask`,
and it offers the same ``sample_captions(images, options)`` as
:class:`~unidit.tasks.caption.task.CaptionTask`, so the caption report
(:func:`~unidit.tasks.caption.evaluate.evaluate_captions`) scores both alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from unidit.tasks.caption.autoregressive import AutoregressiveCaptioner, AutoregressiveCaptionerConfig
from unidit.tasks.caption.tokenizer_folder import open_text_latent
from unidit.tokenizers.text_latent import TextLatentTokenizer
from unidit.training.sampling import SamplingOptions
from unidit.training.trained_task import TrainedTask


class AutoregressiveCaptionTask(TrainedTask):
    """A causal transformer decoder that captions ``(B, 3, H, W)`` pictures word piece by word piece.

    Args:
        text_latent: folder of a fitted text-latent tokenizer: its BERT word pieces and its closed
            vocabulary are this model's tokens (the same text as the diffusion captioner's).
        vocab_size: size of that vocabulary; None = read it from the tokenizer.
        length: longest caption in tokens (``[CLS]`` and ``[SEP]`` included).
        dim, depth, num_heads, mlp_ratio, context_dim: the decoder
            (:class:`~unidit.tasks.caption.autoregressive.AutoregressiveCaptionerConfig`).
        image_size, image_grid, image_channels: the image encoder, as in the diffusion captioner.
        **training: the shared options of ``TrainedTask`` (lr, warmup_steps, ema_decay, ...).
    """

    def __init__(self, text_latent: str | None = None, vocab_size: int | None = None, length: int = 24,
                 dim: int = 128, depth: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0, context_dim: int = 96,
                 image_size: int = 64, image_grid: int = 8, image_channels: int = 32, **training):
        super().__init__(**training)
        self.text_latent = text_latent
        self._frozen: dict = {}  # the tokenizer: not a submodule, never checkpointed
        if vocab_size is None:
            vocab_size = int(self.tokenizer.kept_ids.numel())
        self.save_hyperparameters()  # vocab_size as read, so a checkpoint rebuilds without the tokenizer
        self.denoiser = AutoregressiveCaptioner(AutoregressiveCaptionerConfig(
            vocab_size=vocab_size, length=length, dim=dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
            context_dim=context_dim, image_size=image_size, image_grid=image_grid, image_channels=image_channels))

    # -- the tokenizer ------------------------------------------------------------------
    def set_tokenizer(self, tokenizer: TextLatentTokenizer) -> None:
        """Use this (already loaded) tokenizer; its vocabulary and length must match the decoder's."""
        vocab = int(tokenizer.kept_ids.numel())
        config = getattr(getattr(self, "denoiser", None), "config", None)
        if config is not None and (vocab, tokenizer.length) != (config.vocab_size, config.length):
            raise ValueError(f"the text-latent tokenizer has {vocab} word pieces and length {tokenizer.length}; "
                             f"the captioner was built for {config.vocab_size} and {config.length}")
        self._frozen["tokenizer"] = tokenizer.eval().requires_grad_(False)

    @property
    def tokenizer(self) -> TextLatentTokenizer:
        if "tokenizer" not in self._frozen:
            self.set_tokenizer(open_text_latent(self.text_latent))
        return self._frozen["tokenizer"]

    def token_indices(self, captions: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Teacher forcing: ``(B, L-1)`` input indices and ``(B, L-1)`` targets (-100 where no loss is taken).

        The targets stop after ``[SEP]``; word pieces outside the closed vocabulary (possible
        only in captions it was not built from) are read as the fill token and not predicted.
        """
        tokenizer = self.tokenizer
        ids = tokenizer.token_ids(captions)  # (B, L) [CLS] caption [SEP] fill...
        index = tokenizer.targets(ids)  # (B, L) vocabulary index, -100 outside it
        fill = int(tokenizer.targets(torch.tensor([tokenizer.fill_id]))[0])
        scored = tokenizer.caption_mask(ids) & (index >= 0)  # (B, L)
        inputs = torch.where(index >= 0, index, fill)[:, :-1]  # (B, L-1)
        targets = torch.where(scored, index, -100)[:, 1:]  # (B, L-1) the next token of each position
        return inputs.to(self.device), targets.to(self.device)

    # -- training -------------------------------------------------------------------------
    def caption_loss(self, batch: dict, network: AutoregressiveCaptioner) -> Tensor:
        images = batch["image"].to(self.device)  # (B, 3, H, W)
        captions = list(batch["caption"])
        if images.shape[0] != len(captions):
            raise ValueError(f"batch: {images.shape[0]} images but {len(captions)} captions")
        inputs, targets = self.token_indices(captions)
        logits = network(images, inputs)  # (B, L-1, V)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor | None:
        return self.guarded_loss(self.caption_loss(batch, self.denoiser), batch["image"].shape[0])

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = self.caption_loss(batch, self.sampling_network())
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    # -- sampling -------------------------------------------------------------------------
    @torch.no_grad()
    def sample_indices(self, images: Tensor, *, use_ema: bool = True, max_tokens: int | None = None,
                       stop_early: bool = True) -> Tensor:
        """Greedy ``(B, T)`` vocabulary indices of ``(B, 3, H, W)`` pictures in [-1, 1]."""
        tokenizer = self.tokenizer
        start, stop = (int(i) for i in tokenizer.targets(torch.tensor([tokenizer.cls_id, tokenizer.sep_id])))
        network = self.sampling_network(use_ema)
        return network.greedy(images.to(self.device), start, stop, max_tokens=max_tokens, stop_early=stop_early)

    def sample_captions(self, images: Tensor, options: SamplingOptions | None = None, **kwargs) -> list[str]:
        """Captions of ``(B, 3, H, W)`` pictures by greedy decoding (``options`` are the flow's; unused here)."""
        indices = self.sample_indices(images, **kwargs)  # (B, T)
        tokenizer = self.tokenizer
        return tokenizer.ids_to_text(tokenizer.kept_ids[indices.cpu()])
