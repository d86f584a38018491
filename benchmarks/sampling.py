"""Sampling speed: seconds per generated sample, ours vs diffusers' Lumina-Next, same loop.

One 1024-token latent (32×32 patch grid), classifier-free guidance with the
conditional and unconditional rows in one batched call, a plain Euler loop
written once and used for both sides. Our variants add FORA-style step caching
(``unidit.backbones.step_cache.cached_steps``) and fewer steps; whether those
keep quality is measured on the 3D task (see NOTES.md), not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from unidit.backbones import pack
from unidit.backbones.step_cache import cached_steps

from backbone_step import Sizes, build
from harness import PairResult, Runtime, run_pair


@dataclass
class SampleSizes:
    model: Sizes = field(default_factory=lambda: Sizes(batch=1, grids=(32,)))
    cfg_scale: float = 4.0
    # (our sampler, our steps, our cache interval, peer Euler steps): the same loop at equal
    # settings (20 steps), then the reference 50-step Euler against cheaper samplers of ours
    # whose 3D-task quality was checked against it (NOTES.md).
    variants: tuple[tuple[str, int, int, int], ...] = (
        ("euler", 20, 1, 20), ("euler", 20, 2, 20), ("euler", 50, 2, 50), ("heun", 10, 1, 50), ("heun", 10, 2, 50),
    )


QUICK = SampleSizes(model=Sizes(dim=64, depth=2, heads=2, batch=1, text=8, grids=(4,)),
                    variants=(("euler", 4, 1, 4), ("heun", 2, 2, 4)))


def guided(velocity, x, t, scale: float):
    """CFG with the conditional and unconditional rows in one call of ``velocity``."""
    cond, uncond = velocity(torch.cat([x, x]), t.expand(2 * x.shape[0])).chunk(2)
    return uncond + scale * (cond - uncond)


def sample_cfg(velocity, x, sampler: str, steps: int, scale: float):
    """Euler or Heun (2nd order, Karras et al. 2022) from t = 1 to 0 on a uniform grid."""
    times = torch.linspace(1.0, 0.0, steps + 1, device=x.device)
    for i in range(steps):
        dt = times[i + 1] - times[i]
        v = guided(velocity, x, times[i], scale)
        if sampler == "heun" and i < steps - 1:
            v = 0.5 * (v + guided(velocity, x + dt * v, times[i + 1], scale))
        x = x + dt * v
    return x


def make_samplers(s: SampleSizes, runtime: Runtime):
    m = s.model
    ours, theirs = build("flag_dit", m)
    ours, theirs = ours.eval().to(runtime.device), theirs.eval().to(runtime.device)
    dev = runtime.device
    g = torch.Generator().manual_seed(0)
    side = m.grids[0] * m.patch
    noise = torch.randn(1, m.channels, side, side, generator=g).to(dev)
    context = torch.randn(2, m.text, m.dim, generator=g).to(dev)  # [caption; null caption]
    context_mask = torch.zeros(2, m.text, dtype=torch.bool, device=dev)
    context_mask[0, : m.text // 2] = True
    context_mask[1, :1] = True
    layout = pack(torch.cat([noise, noise]), m.patch)  # positions / slots of the doubled batch

    def ours_velocity(tokens, t):
        with runtime.autocast():
            h = ours.embed(tokens)
            h = ours.backbone(h, t, layout.positions, layout.slot_kind, layout.key_mask, context, context_mask)
            return ours.out(h).float()

    from diffusers.models.embeddings import get_2d_rotary_pos_embed_lumina

    rotary = get_2d_rotary_pos_embed_lumina(m.dim // m.heads, side, side).to(dev)

    def theirs_velocity(latents, t):
        with runtime.autocast():
            return theirs(latents, t, context, context_mask, rotary, cross_attention_kwargs={},
                          return_dict=False)[0].float()

    start_tokens = pack(noise, m.patch).tokens  # (1, L, C·p²)

    @torch.no_grad()
    def ours_sample(sampler: str, steps: int, interval: int):
        with cached_steps(ours.backbone, interval=interval, warmup=2):
            return sample_cfg(ours_velocity, start_tokens, sampler, steps, s.cfg_scale)

    @torch.no_grad()
    def theirs_sample(steps: int):
        return sample_cfg(theirs_velocity, noise, "euler", steps, s.cfg_scale)

    return ours_sample, theirs_sample


def run(s: SampleSizes, rounds: int, log=print, runtime: Runtime | None = None) -> list[dict]:
    runtime = runtime or Runtime()
    torch.manual_seed(0)
    ours_sample, theirs_sample = make_samplers(s, runtime)
    rows = []
    for sampler, steps, interval, peer_steps in s.variants:
        log(f"  sampling: ours {sampler} {steps} steps cache {interval} vs Lumina-Next euler {peer_steps} steps ...")
        res: PairResult = run_pair(lambda: ours_sample(sampler, steps, interval), lambda: theirs_sample(peer_steps),
                                   rounds, names=("FlagDiT", "LuminaNextDiT2DModel"), runtime=runtime)
        rows.append(dict(sampler=sampler, steps=steps, interval=interval, peer_steps=peer_steps, result=res))
    return rows
