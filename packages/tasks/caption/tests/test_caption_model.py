"""The diffusion captioner: the flow loss falls, sampling returns captions, self-conditioning runs, clear shape errors."""

from __future__ import annotations

import pytest
import torch
from unidit.tasks.caption.datamodule import CaptionData, ImageCaptionDataset
from unidit.tasks.caption.denoiser import CONTEXT_GATE_INIT, CaptionDenoiser, CaptionDenoiserConfig, clean_estimate
from unidit.tasks.caption.objective import caption_losses
from unidit.tasks.caption.refine import least_confident, token_confidence
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
    """The task's own training loss (x0 or velocity error, as it predicts) with times and noise from ``seed``."""
    inputs = task.flow_inputs(batch)
    context, mask = task.encode_captions(task.drop_captions(inputs.captions))
    torch.manual_seed(seed)
    return caption_losses(task.denoiser, task.flow, inputs, context, mask, task.tokenizer, None, 0.0).total


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
    # the image encoder is trained with the task: it gets a real gradient through open gates
    assert task.denoiser.image_encoder.proj.weight.grad.abs().sum() > 0
    assert all(block.cross_attn.gate.abs().min() > 0.1 for block in task.denoiser.backbone.blocks)


def test_the_captioners_cross_attention_gates_start_open_unless_told(tokenizer):
    """A context encoder trained from scratch needs open gates (Lumina's zero init suits pretrained text)."""
    opened = CaptionDenoiser(CaptionDenoiserConfig(**TINY))
    closed = CaptionDenoiser(CaptionDenoiserConfig(**{**TINY, "backbone": {**TINY["backbone"], "cross_gate_init": 0}}))
    for block in opened.backbone.blocks:
        assert torch.equal(block.cross_attn.gate, torch.full_like(block.cross_attn.gate, CONTEXT_GATE_INIT))
    assert all(not block.cross_attn.gate.any() for block in closed.backbone.blocks)


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
    original = network.predict

    def counting(*args):
        calls.append(args[-1].abs().sum().item())  # size of the self-conditioning input
        return original(*args)

    network.predict = counting
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


def test_x0_prediction_with_token_cross_entropy_learns(scenes, tokenizer):
    """LaDiC's objective: the network predicts x0, and a token CE through the decoder is added (weight 0.2)."""
    task = _task(tokenizer, prediction="x0", ce_weight=0.2)
    batch = {key: value[:12] for key, value in next(iter(scenes.train_dataloader())).items()}  # 12 scenes suffice
    optimiser = torch.optim.AdamW(task.denoiser.parameters(), lr=3e-3)
    task.train()
    token_ce = []
    for step in range(20):
        torch.manual_seed(step)  # the same draws for any run of this test
        inputs = task.flow_inputs(batch)
        context, mask = task.encode_captions(inputs.captions)
        losses = caption_losses(task.denoiser, task.flow, inputs, context, mask, tokenizer,
                                tokenizer.token_ids(inputs.captions), task.ce_weight)
        torch.testing.assert_close(losses.total, losses.latent + 0.2 * losses.token_ce)
        optimiser.zero_grad()
        losses.total.backward()
        optimiser.step()
        token_ce.append(float(losses.token_ce.detach()))
    assert sum(token_ce[-5:]) < 0.7 * sum(token_ce[:5]), token_ce
    # x0 and velocity predictions describe the same flow: as_velocity inverts clean_estimate's relation
    x_t, t, out = torch.randn(2, 24, 384), torch.tensor([0.3, 0.8]), torch.randn(2, 24, 384)
    v = task.denoiser.as_velocity(x_t, t, out)
    torch.testing.assert_close(clean_estimate(x_t, t, v), out, rtol=1e-5, atol=1e-5)
    texts = task.sample_captions(scenes.pictures("test")[:2], SamplingOptions(steps=3))
    assert len(texts) == 2


def test_back_and_refine_regenerates_only_the_least_confident_positions(scenes, tokenizer):
    task = _task(tokenizer, hold_prob=0.5)
    pictures = scenes.pictures("test")[:3]
    options = SamplingOptions(steps=3, seed=2)
    first = task.sample_latents(pictures, options)
    refined = task.sample_latents(pictures, options, refine_fraction=0.25)
    renoise = least_confident(token_confidence(tokenizer, first), 0.25)  # (3, 24)
    assert renoise.sum(dim=1).tolist() == [6, 6, 6]
    assert torch.equal(refined[~renoise], first[~renoise])  # held positions come out bit for bit
    assert not torch.equal(refined[renoise], first[renoise])
    # training with hold_prob holds some positions of some captions, never all of one
    task.train()
    torch.manual_seed(0)
    cond = task.flow_inputs(next(iter(scenes.train_dataloader()))).cond
    assert cond is not None and cond.mask.any() and not cond.mask.all(dim=1).any()
    with pytest.raises(ValueError, match="refine_fraction"):
        least_confident(torch.rand(1, 24), 1.0)
