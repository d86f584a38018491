"""Opening the text-latent tokenizer a captioner names by folder (both captioners read words through it)."""

from __future__ import annotations

import os

from unidit.tokenizers.text_latent import TextLatentTokenizer


def open_text_latent(folder: str | None) -> TextLatentTokenizer:
    """The frozen tokenizer saved in ``folder`` (a variant folder of ``unidit fit text-latent``)."""
    if folder is None:
        raise ValueError("model.text_latent is None: the captioner needs a fitted text-latent tokenizer "
                         "(a variant folder of `unidit fit text-latent`, e.g. runs/text_latent/version_0/head)")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(f"model.text_latent {folder}: no config.json there; expected a text-latent "
                                "tokenizer folder (<run>/head or <run>/upper of `unidit fit text-latent`)")
    return TextLatentTokenizer.from_pretrained(folder).eval().requires_grad_(False)
