"""The diffusion captioner: the flow loss falls, sampling returns captions, self-conditioning runs, clear shape errors."""

from __future__ import annotations

import pytest
import torch
from unidit.tasks.caption.datamodule import CaptionData, ImageCaptionDataset
from unidit.tasks.caption.denoiser import CaptionDenoiser, CaptionDenoiserConfig
from unidit.tasks.caption.image_encoder import ImageEncoder
from unidit.tasks.caption.task import CaptionTask
from unidit.tokenizers.text_latent import TextLatentTokenizer, fit_statistics
from unidit.training.sampling import SamplingOptions

TINY = {"preset": "tiny", "backbone": {"dim": 64, "depth": 2, "num_heads": 4, "context_dim": 64}, "image_channels": 16}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    data = CaptionData(seed=1, num_train=36, num_val=4, num_test=4, batch_size=36,
                       cache_dir=str(tmp_path_factory.mktemp("cache")))
    data.setup()
    return data


@pytest.fixture(scope="module")
def tokenizer(scenes):
    tok = TextLatentTokenizer(decoder="head")
    fit_statistics(tok, scenes.split_captions("train"))  # per-dimension normalisation of the latents
    return tok


def _task(tokenizer, **overrides) -> CaptionTask:
    torch.manual_seed(0)
    task = CaptionTask(**{**TINY, **overrides}, lr=3e-3, warmup_steps=5, caption_dropout=0.1)
    task.set_tokenizer(tokenizer)
    task.ensure_ema()
    return task


def _loss(task: CaptionTask, batch: dict, seed: int) -> torch.Tensor:
    inputs = task.flow_inputs(batch)
    context, mask = task.encode_captions(task.drop_captions(inputs.captions))
    generator = torch.Generator().manual_seed(seed)
    return task.flow.loss(lambda x, t: task.denoiser(x, t, context, mask), inputs.x0, generator=generator)


def test_flow_loss_falls_on_a_few_dozen_scenes(scenes, tokenizer):
    task = _task(tokenizer)
    batch = next(iter(scenes.train_dataloader()))  # 36 (picture, caption) pairs
    assert batch["image"].shape == (36, 3, 64, 64)
    optimiser = torch.optim.AdamW(task.denoiser.parameters(), lr=3e-3)

    def held_out_loss() -> float:
        task.eval()
        with torch.no_grad():
            value = sum(float(_loss(task, batch, seed)) for seed in range(2)) / 2  # fixed noise and times
        task.train()
        return value

    before = held_out_loss()
    task.train()
    for step in range(40):
        loss = _loss(task, batch, 100 + step)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = held_out_loss()
    assert after < 0.8 * before, (before, after)
    # the image encoder is trained with the task: its weights moved
    assert task.denoiser.image_encoder.proj.weight.grad is not None


def test_sampling_returns_captions_with_and_without_guidance(scenes, tokenizer):
    task = _task(tokenizer)
    pictures = scenes.pictures("test")[:3]  # (3, 3, 64, 64)
    for cfg in (1.0, 2.0):
        texts = task.sample_captions(pictures, SamplingOptions(steps=3, cfg_scale=cfg, sampler="heun"))
        assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    latents = task.sample_latents(pictures, SamplingOptions(steps=2, seed=5))
    assert latents.shape == (3, 24, 384) and torch.isfinite(latents).all()
    assert torch.equal(latents, task.sample_latents(pictures, SamplingOptions(steps=2, seed=5)))


def test_self_conditioning_runs_an_extra_pass_in_training_only(tokenizer):
    torch.manual_seed(0)
    config = CaptionDenoiserConfig(**TINY, self_condition_prob=1.0)
    network = CaptionDenoiser(config)
    torch.nn.init.normal_(network.head.weight, std=0.02)  # a non-zero velocity, so the estimate matters
    calls = []
    original = network.velocity

    def counting(*args):
        calls.append(args[-1].abs().sum().item())  # size of the self-conditioning input
        return original(*args)

    network.velocity = counting
    x, t = torch.randn(2, 24, 384), torch.full((2,), 0.7)
    context, mask = network.image_context(torch.zeros(2, 3, 64, 64))
    network.train()
    out = network(x, t, context, mask)
    assert len(calls) == 2 and calls[0] == 0.0 and calls[1] > 0.0  # zeros first, then its own estimate
    out.square().mean().backward()
    assert network.patch_embed.weight.grad[:, 384:].abs().sum() > 0  # the estimate's half of the projection learns
    calls.clear()
    network.eval()
    network(x, t, context, mask)
    assert len(calls) == 1
    network.config.self_condition_prob = 0.0
    network.train()
    calls.clear()
    network(x, t, context, mask)
    assert len(calls) == 1


def test_shape_errors_name_what_was_expected(tokenizer):
    network = CaptionDenoiser(CaptionDenoiserConfig(**TINY))
    context, mask = network.image_context(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"text latents: expected \(B, 24, 384\).*got \(1, 20, 384\)"):
        network(torch.zeros(1, 20, 384), torch.zeros(1), context, mask)
    with pytest.raises(ValueError, match=r"self_cond: expected"):
        network(torch.zeros(1, 24, 384), torch.zeros(1), context, mask, self_cond=torch.zeros(1, 24, 10))
    with pytest.raises(ValueError, match=r"images: expected \(B, 3, 64, 64\).*got \(1, 3, 32, 32\)"):
        network.image_context(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="image_grid 5"):
        ImageEncoder(image_size=64, grid=5)
    with pytest.raises(ValueError, match=r"model.length, model.latent_dim.*\(16, 384\)"):
        CaptionTask(**TINY, length=16).set_tokenizer(tokenizer)
    with pytest.raises(ValueError, match="model.text_latent is None"):
        CaptionTask(**TINY).tokenizer
    with pytest.raises(ValueError, match="self_condition_prob"):
        CaptionDenoiserConfig(self_condition_prob=1.5)


def test_training_pairs_every_caption_with_its_picture(scenes):
    dataset = ImageCaptionDataset(scenes.splits["val"], 64, every_caption=True)
    assert len(dataset) == sum(len(c) for c in scenes.splits["val"].captions)
    item = dataset[6]
    assert item["image"].shape == (3, 64, 64) and -1.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["caption"] in scenes.splits["val"].captions[item["image_id"] - scenes.splits["val"].image_ids[0]]
