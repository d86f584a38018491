"""The autoregressive baseline captioner: teacher forcing lines up, the loss falls, greedy decoding is causal."""

from __future__ import annotations

import pytest
import torch
from unidit.tasks.caption.autoregressive_task import AutoregressiveCaptionTask
from unidit.tasks.caption.datamodule import CaptionData
from unidit.tokenizers.text_latent import TextLatentTokenizer, caption_vocabulary

TINY = {"dim": 64, "depth": 2, "num_heads": 4, "context_dim": 64, "image_channels": 16}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    data = CaptionData(seed=2, num_train=36, num_val=4, num_test=4, batch_size=36,
                       cache_dir=str(tmp_path_factory.mktemp("cache")))
    data.setup()
    return data


@pytest.fixture(scope="module")
def tokenizer(scenes):
    return TextLatentTokenizer(decoder="head", vocab_ids=caption_vocabulary(None, scenes.split_captions("train")))


def _task(tokenizer) -> AutoregressiveCaptionTask:
    torch.manual_seed(0)
    task = AutoregressiveCaptionTask(vocab_size=int(tokenizer.kept_ids.numel()), **TINY, lr=3e-3, warmup_steps=5)
    task.set_tokenizer(tokenizer)
    task.ensure_ema()
    return task


def test_teacher_forcing_targets_are_the_next_tokens_up_to_sep(tokenizer):
    task = _task(tokenizer)
    inputs, targets = task.token_indices(["a red circle", "a small blue square to the left of a green star"])
    assert inputs.shape == targets.shape == (2, tokenizer.length - 1)
    ids = tokenizer.token_ids(["a red circle"])[0]
    words = int(tokenizer.caption_mask(ids[None]).sum()) - 1  # positions after [CLS] up to [SEP]
    assert (targets[0, :words] == tokenizer.targets(ids)[1: words + 1]).all()
    assert (targets[0, words:] == -100).all()  # nothing is predicted after [SEP]
    assert (inputs[:, 1:] == torch.where(targets[:, :-1] >= 0, targets[:, :-1], inputs[:, 1:])).all()
    # the targets read back as the caption: [CLS] in front, then the word pieces and [SEP]
    row = torch.cat([inputs[0, :1], targets[0, :words]])
    assert tokenizer.ids_to_text(tokenizer.kept_ids[row][None]) == ["a red circle"]


def test_loss_falls_and_greedy_captions_decode_to_words(scenes, tokenizer):
    task = _task(tokenizer)
    batch = next(iter(scenes.train_dataloader()))  # 36 (picture, caption) pairs
    optimiser = torch.optim.AdamW(task.denoiser.parameters(), lr=3e-3)
    task.train()
    losses = []
    for _ in range(30):
        loss = task.caption_loss(batch, task.denoiser)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses
    task.eval()
    texts = task.sample_captions(batch["image"][:4], use_ema=False)
    assert len(texts) == 4 and all(isinstance(t, str) and t for t in texts)
    vocabulary = {w for c in tokenizer.normalise_text(scenes.split_captions("train")) for w in c.split()}
    assert all(word in vocabulary for text in texts for word in text.split())


def test_decoding_is_causal_and_runs_to_the_requested_length(scenes, tokenizer):
    task = _task(tokenizer).eval()
    pictures = scenes.pictures("test")[:2]
    network = task.sampling_network()
    tokens = task.sample_indices(pictures, max_tokens=10, stop_early=False)
    assert tokens.shape == (2, 10)
    memory = network.image_memory(pictures)
    full = network.logits(tokens, memory)  # (2, 10, V)
    prefix = network.logits(tokens[:, :5], memory)  # later tokens must not change earlier logits
    torch.testing.assert_close(full[:, :5], prefix, rtol=1e-4, atol=1e-4)
    assert (tokens[:, 1:] == full[:, :-1].argmax(-1)).all()  # greedy: each token is the argmax before it


def test_a_tokenizer_of_another_vocabulary_is_refused(tokenizer):
    task = _task(tokenizer)
    other = TextLatentTokenizer(decoder="head", vocab_ids=[1037, 2417])
    with pytest.raises(ValueError, match="word pieces"):
        task.set_tokenizer(other)
