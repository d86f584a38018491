"""Text-latent tokenizer (LaDiC split BERT): fill convention, statistics, latent cache, round trip, save/load."""

from __future__ import annotations

import pytest
import torch
from unidit.tokenizers.text_latent import (
    DecoderTraining, TextLatentTokenizer, caption_latents, caption_vocabulary, distinct_ids, fit_statistics,
    fit_variants, roundtrip_metrics,
)

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle", "star")
RELATIONS = ("to the left of", "above", "under")


def _captions(start: int, count: int) -> list[str]:
    """Scene-like captions in a closed vocabulary, distinct per index."""
    out = []
    for k in range(start, start + count):
        a = f"a {COLOURS[k % 4]} {SHAPES[(k // 4) % 4]}"
        b = f"a {COLOURS[(k // 16) % 4]} {SHAPES[(k // 64) % 4]}"
        out.append(a if k % 5 == 0 else f"{a} {RELATIONS[k % 3]} {b}")
    return out


TRAIN, TEST = _captions(0, 160), _captions(160, 40)


@pytest.fixture(scope="module")
def fitted():
    vocab = caption_vocabulary(None, TRAIN)
    return fit_variants(TRAIN, ("upper", "head"), vocab_ids=vocab,
                        training=DecoderTraining(steps=120, batch_size=32, lr=3e-3))


def test_ids_follow_the_fill_convention(fitted):
    tok = fitted.variants["head"].tokenizer
    ids = tok.token_ids(["a red circle", "word " * 40])  # (2, 24)
    assert ids.shape == (2, tok.length)
    short = ids[0].tolist()
    n = len(tok.text_tokenizer("a red circle", add_special_tokens=False)["input_ids"])
    assert short[0] == tok.cls_id and short[n + 1] == tok.sep_id
    assert short[n + 2 :] == [tok.fill_id] * (tok.length - n - 2)  # "." fills every position after [SEP]
    assert ids[1, -1] == tok.sep_id  # a long caption is cut, [SEP] kept
    mask = tok.caption_mask(ids)
    assert mask[0].sum() == n + 2 and mask[1].all()
    assert tok.ids_to_text(ids[:1]) == ["a red circle"]


def test_statistics_normalise_the_training_latents(fitted):
    tok = fitted.variants["head"].tokenizer
    latents = tok.encode_ids(distinct_ids(tok, TRAIN)).flatten(0, 1)  # (N * L, D): the set the statistics saw
    assert latents.mean(0).abs().max() < 0.05
    assert (latents.std(0) - 1).abs().max() < 0.05
    assert fitted.statistics["raw_std_mean"] > 0
    shared = fitted.variants["upper"].tokenizer
    assert torch.equal(shared.latent_mean, tok.latent_mean)  # one pass of the lower layers for both variants


def test_loss_falls_and_round_trip_is_above_bound(fitted):
    for decoder, variant in fitted.variants.items():
        assert variant.losses[-1] < 0.2 * variant.losses[0], decoder
        held_out = roundtrip_metrics(variant.tokenizer, TEST)
        assert held_out["token_accuracy"] > 0.97, (decoder, held_out)
        assert held_out["exact_caption_rate"] > 0.85, (decoder, held_out)


def test_latents_are_cached_once_per_distinct_caption(fitted, tmp_path):
    tok = fitted.variants["head"].tokenizer
    repeated = TRAIN[:20] + [c.upper() for c in TRAIN[:20]]  # case variants tokenise alike
    assert len(distinct_ids(tok, repeated)) == 20
    first = caption_latents(tok, repeated, tmp_path)
    files = list(tmp_path.glob("raw-*.safetensors"))
    assert len(files) == 1 and first.raw.shape == (20, tok.length, tok.dim)
    again = caption_latents(tok, repeated, tmp_path)
    assert torch.equal(first.raw, again.raw)
    files[0].write_bytes(b"damaged")  # a damaged cache is recomputed, not trusted
    assert torch.allclose(caption_latents(tok, repeated, tmp_path).raw, first.raw)
    assert len(caption_latents(tok, TRAIN, None, limit=50, seed=1)) == 50
    with pytest.raises(ValueError, match="no captions"):
        caption_latents(tok, [])
    with pytest.raises(ValueError, match="no captions"):
        fit_statistics(tok, [])


def test_save_and_load_round_trip_exactly(fitted, tmp_path):
    tok = fitted.variants["upper"].tokenizer
    tok.save_pretrained(str(tmp_path / "upper"))
    loaded = TextLatentTokenizer.from_pretrained(str(tmp_path / "upper"))
    assert loaded.decoder == "upper" and loaded.vocab_ids == tok.vocab_ids
    latents = tok.encode(TEST[:8])
    assert torch.equal(loaded.encode(TEST[:8]), latents)
    assert loaded.decode(latents) == tok.decode(latents)
    other = fitted.variants["head"].tokenizer
    other.save_pretrained(str(tmp_path / "head"))
    (tmp_path / "head" / "config.json").write_text((tmp_path / "upper" / "config.json").read_text()
                                                   .replace('"length": 24', '"length": 16'))
    loaded_short = TextLatentTokenizer.from_pretrained(str(tmp_path / "head"))  # same tensors, other length
    assert loaded_short.length == 16


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="decoder must be one of"):
        TextLatentTokenizer(decoder="lstm")
    with pytest.raises(ValueError, match="split_layer"):
        TextLatentTokenizer(split_layer=6)
