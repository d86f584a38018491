"""The two choices that issue 22 found wrong: where the captioner's flow trains, and what it predicts.

Text diffusion needs more weight at high noise than images do (Diffusion-LM, Li et al.
2022; CDCD, Dieleman et al. 2022; Plaid, Gulrajani & Hashimoto 2023): a word can still
be read from its noisy latent far into the flow, so the picture only matters near
t = 1. These tests check that premise on real MiniLM latents of the embedded scenes and
that the captioner's default time shift (SD3 §5.3.2) puts training and sampling there.
The last one shows why the captioner predicts x0 (LaDiC, Wang et al. 2024, §3.2): a
velocity head narrower than the latent cannot take the noise out of a sample.
"""

from __future__ import annotations

import pytest
import torch
from unidit.backbones.time_schedule import timestep_schedule
from unidit.tasks.caption.datamodule import CaptionData
from unidit.tasks.caption.task import TIME_SHIFT, CaptionTask
from unidit.tokenizers.text_latent import TextLatentTokenizer, fit_statistics
from unidit.training.sampling import SamplingOptions

TINY = {"preset": "tiny", "backbone": {"dim": 64, "depth": 2, "num_heads": 4, "context_dim": 64}, "image_channels": 16}


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    """``(N, L, D)`` normalised latents of scene captions, their ``(N, L)`` ids and the ``(N, L)`` word positions."""
    data = CaptionData(seed=1, num_train=40, num_val=2, num_test=2, cache_dir=str(tmp_path_factory.mktemp("cache")))
    captions = data.split_captions("train")
    tokenizer = TextLatentTokenizer(decoder="head")
    fit_statistics(tokenizer, captions)
    ids = tokenizer.token_ids(captions)
    words = tokenizer.caption_mask(ids) & (ids != tokenizer.cls_id) & (ids != tokenizer.sep_id)
    return tokenizer.encode_ids(ids), ids, words


def readable_share(x0: torch.Tensor, ids: torch.Tensor, words: torch.Tensor, t: float, seed: int = 0) -> float:
    """Share of the words whose noisy latent ``x_t`` is nearest to its own word's mean clean latent.

    The readout sees one position alone, scaled back to the data's magnitude, ``x_t / (1 - t)``;
    the prototypes are the mean latents of each word over the captions (an upper bound's worth of help).
    """
    flat, flat_ids = x0[words], ids[words]  # (W, D), (W,)
    vocabulary = flat_ids.unique()  # (V,)
    prototypes = torch.stack([flat[flat_ids == word].mean(0) for word in vocabulary])  # (V, D)
    noise = torch.randn(flat.shape, generator=torch.Generator().manual_seed(seed))
    noisy = ((1 - t) * flat + t * noise) / (1 - t)  # (W, D)
    guessed = vocabulary[torch.cdist(noisy, prototypes).argmin(1)]  # (W,)
    return float((guessed == flat_ids).float().mean())


def training_times(task: CaptionTask, draws: int = 20000) -> torch.Tensor:
    """``(draws,)`` training times of ``task``'s flow (fixed seed)."""
    return task.flow.sample_t(torch.zeros(draws, 24, 1), generator=torch.Generator().manual_seed(0))


def test_words_are_decided_at_high_noise_where_the_captioner_trains(latents):
    """Words stay readable from their own latent until t ~ 0.85 (the picture adds little there);
    the shared density rarely trains beyond, the captioner's shifted density often does."""
    x0, ids, words = latents
    grid = torch.linspace(0.5, 0.99, 50)
    shares = torch.tensor([readable_share(x0, ids, words, float(t)) for t in grid])  # (50,)
    assert shares[0] > 0.9 and shares[-1] < 0.2
    assert torch.all(shares[1:] <= shares[:-1] + 0.05), shares  # falls with the noise
    decided = float(grid[int((shares < 0.5).nonzero()[0])])  # first time at which most words are unreadable
    assert 0.8 < decided < 0.97
    shared = float((training_times(CaptionTask(**TINY, time_shift=1.0)) > decided).float().mean())
    captioner = float((training_times(CaptionTask(**TINY)) > decided).float().mean())
    assert shared < 0.06 and captioner > 0.25, (decided, shared, captioner)


def test_the_captioner_trains_at_high_noise_by_default():
    captioner, shared = CaptionTask(**TINY), CaptionTask(**TINY, time_shift=1.0)
    assert captioner.flow.shift == TIME_SHIFT > 1
    assert captioner.hparams.time_shift == TIME_SHIFT  # recorded, so exports sample with the shift they trained with
    assert float(training_times(shared).median()) == pytest.approx(0.5, abs=0.01)  # logit-normal(0, 1) (SD3)
    shifted = TIME_SHIFT / (1 + TIME_SHIFT)  # the shift maps the median 0.5 to s / (1 + s)
    assert float(training_times(captioner).median()) == pytest.approx(shifted, abs=0.01)


def test_sampling_follows_the_training_shift_unless_told(latents):
    """The report's sampling (shift None) spends its steps where training did; an explicit shift wins."""
    task = CaptionTask(**TINY)
    seen: list[float] = []

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(float(t.flatten()[0]))
        return torch.zeros_like(x)

    task.flow.sample(velocity, torch.zeros(1, 24, 4), steps=10)
    torch.testing.assert_close(torch.tensor(seen), timestep_schedule(10, TIME_SHIFT)[:-1])
    assert sum(t > 0.7 for t in seen) >= 6  # more than half of the steps where words are still undecided
    seen.clear()
    task.flow.sample(velocity, torch.zeros(1, 24, 4), steps=10, shift=1.0)
    torch.testing.assert_close(torch.tensor(seen), timestep_schedule(10, 1.0)[:-1])


def test_a_velocity_network_narrower_than_its_latents_leaves_noise_in_every_sample():
    """The head writes a (backbone width)-dimensional subspace of the 384 latent channels: a velocity
    network never moves the latents out of it, so the starting noise outside survives sampling; an x0
    network's sample is its last clean estimate, inside that span, with the noise gone."""
    pictures = torch.zeros(2, 3, 64, 64)
    options = SamplingOptions(steps=4, seed=3)
    noise = torch.randn(2, 24, 384, generator=torch.Generator().manual_seed(options.seed))  # what sampling starts from
    for prediction in ("velocity", "x0"):
        torch.manual_seed(0)
        task = CaptionTask(**TINY, prediction=prediction, text_latent=None)
        torch.nn.init.normal_(task.denoiser.head.weight, std=0.1)  # a network that writes something
        task.ensure_ema()
        sample = task.sample_latents(pictures, options)  # (2, 24, 384)
        span = torch.linalg.qr(task.denoiser.head.weight.detach()).Q  # (384, 64): what the head can write
        outside = torch.eye(384) - span @ span.T  # projector onto the 320 channels it cannot
        if prediction == "velocity":
            torch.testing.assert_close(sample @ outside, noise @ outside, rtol=0, atol=1e-4)
        else:
            assert ((sample - task.denoiser.head.bias.detach()) @ outside).norm() < 1e-3 * (noise @ outside).norm()
