"""Batched caption embedding whose bits do not depend on the batch mates (bit-exact resume)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is first imported

import pytest
import torch
from unidit.backbones.text_encoder import CaptionEmbeddingCache, TextEncoder, shared_text_encoder

CAPTIONS = [
    "a large tall thin cylinder lying on its side",
    "a little sphere",
    "a big short wide hemisphere, turned upside down",
    "a cone that is small and short and wide, upside down",
    "a big torus, standing on its edge",
    "a capsule",
    "",
    "a tiny cube",
    "a huge flat box resting on one of its long faces, slightly rotated",
    "a medium cylinder upright",
    "a small wide cone pointing down",
    "a torus lying flat",
] * 2  # 24 rows; the repeats are told apart by a suffix below
CAPTIONS = [f"{c} {i}" if i >= 12 else c for i, c in enumerate(CAPTIONS)]


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(max_length=16)


def test_encode_to_a_fixed_length(encoder):
    hidden, mask = encoder.encode(["a red ball", " ".join(["word"] * 40)], length=8)
    assert hidden.shape == (2, 8, encoder.hidden_size) and mask.shape == (2, 8)
    assert mask.sum(1).tolist() == [encoder.token_counts(["a red ball"])[0], 8]  # padded; truncated
    assert (hidden[~mask] == 0).all()
    assert encoder.token_counts(["", " ".join(["word"] * 40)]) == [2, 16]  # [CLS] [SEP]; max_length
    with pytest.raises(ValueError, match="length"):
        encoder.encode(["a red ball"], length=17)


def test_padded_lengths_and_one_length_per_encoder_call(encoder, monkeypatch):
    cache = CaptionEmbeddingCache(encoder, batch_size=3, pad_multiple=8)
    assert [cache.padded_length(n) for n in (2, 8, 9, 16)] == [8, 8, 16, 16]
    calls = []
    encode = encoder.encode

    def recording(captions, length=None):
        calls.append((len(captions), length))
        return encode(captions, length=length)

    monkeypatch.setattr(encoder, "encode", recording)
    captions = ["a ball", "a very long caption with quite a lot of words in it", "a cube", "a cone", "x"]
    context, mask = cache(captions)
    counts = encoder.token_counts(captions)
    assert mask.sum(1).tolist() == counts  # the stored rows drop the padding again
    assert sorted(calls) == [(3, 8), (3, 8), (3, 16)]  # 4 short (3 + 1 and filler), 1 long; always 3 rows


@pytest.mark.parametrize("pad_multiple", [8, 16])
def test_embedding_does_not_depend_on_batch_mates(encoder, pad_multiple):
    """A caption alone, among 1-23 others, first, in the middle or last: the same bits.

    This holds on a CPU because every encoder call has the same shape (rows
    padded to one length, calls filled to ``batch_size`` rows) and the matrix
    products' results for one row do not depend on its position or its batch
    mates (checked here for odd and even batch sizes). Batches padded
    to their longest caption (``pad_multiple=None``) change the last bits in
    general (``benchmarks/voxels.py captions`` shows one).
    """
    probe = CAPTIONS[0]
    mates = [c for c in CAPTIONS if c != probe]
    for size in (2, 3, 8, 13, 24):
        alone = CaptionEmbeddingCache(encoder, batch_size=size, pad_multiple=pad_multiple)([probe])[0][0]
        for at in sorted({0, size // 2, size - 1}):
            batch = mates[: size - 1]
            batch.insert(at, probe)
            context, mask = CaptionEmbeddingCache(encoder, batch_size=size, pad_multiple=pad_multiple)(batch)
            n = alone.shape[0]
            assert int(mask[at].sum()) == n
            assert torch.equal(context[at, :n], alone), (size, at)


def test_cache_fills_identically_however_misses_arrive(encoder):
    """A run whose cache starts empty mid-training (resume) stores the same embeddings as one that ran through."""
    through = CaptionEmbeddingCache(encoder, batch_size=32, pad_multiple=8)
    through(CAPTIONS)  # everything missed at once
    resumed = CaptionEmbeddingCache(encoder, batch_size=32, pad_multiple=8)
    for start in range(len(CAPTIONS) - 1, -1, -5):  # backwards, a few at a time
        resumed(CAPTIONS[max(start - 4, 0) : start + 1])
    one_by_one = CaptionEmbeddingCache(encoder, batch_size=32, pad_multiple=8)
    for caption in CAPTIONS:
        one_by_one([caption])
    assert len(through) == len(resumed) == len(one_by_one) == len(CAPTIONS)
    for caption in CAPTIONS:
        assert torch.equal(through._store[caption], resumed._store[caption])
        assert torch.equal(through._store[caption], one_by_one._store[caption])
    # The padding tokens are masked out of attention, so the embedding is also close to the
    # unpadded encoder's (not bit-equal: the reductions run over a different length).
    fresh, fresh_mask = encoder.encode([CAPTIONS[0]])
    assert torch.allclose(fresh[0][fresh_mask[0]], through._store[CAPTIONS[0]], atol=1e-5)


def test_cache_arguments_are_validated(encoder):
    with pytest.raises(ValueError, match="batch_size"):
        CaptionEmbeddingCache(encoder, batch_size=0)
    with pytest.raises(ValueError, match="pad_multiple"):
        CaptionEmbeddingCache(encoder, pad_multiple=0)


def test_one_shared_encoder_per_model_and_length():
    shared = shared_text_encoder(None, 16)
    assert shared_text_encoder(shared.name_or_path, 16) is shared  # None = the bundled MiniLM's path
    assert shared_text_encoder(None, 12) is not shared  # another length truncates differently
    assert shared.max_length == 16 and not shared.training
