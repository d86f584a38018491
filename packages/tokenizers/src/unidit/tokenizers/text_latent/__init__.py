"""Text-latent tokenizer (LaDiC): captions ↔ per-token BERT latents of fixed length."""

from unidit.tokenizers.text_latent.latents import CaptionLatents, caption_latents, distinct_ids
from unidit.tokenizers.text_latent.model import (
    DECODERS, LatentLMHead, TextLatentTokenizer, caption_vocabulary, default_bert_path,
)
from unidit.tokenizers.text_latent.training import (
    DecoderTraining, fit_statistics, raw_latents, roundtrip_metrics, train_decoder,
)
from unidit.tokenizers.text_latent.variants import FittedVariant, VariantFit, fit_variants

__all__ = [
    "DECODERS", "CaptionLatents", "DecoderTraining", "FittedVariant", "LatentLMHead", "TextLatentTokenizer",
    "VariantFit", "caption_latents", "caption_vocabulary", "default_bert_path", "distinct_ids", "fit_statistics",
    "fit_variants", "raw_latents", "roundtrip_metrics", "train_decoder",
]
