"""Mixed-size batches: one packed/masked batch vs padding every sample to the largest.

Latents of three sizes whose token counts differ 4x (smallest to largest) go
through our FlagDiT training step (forward + backward):

* packed: one ``pack`` of the mixed list; shorter samples are right-padded
  with PAD slots that ``key_mask`` hides from attention (and the loss);
* padded: every latent zero-padded on its grid to the largest size and packed
  as a uniform batch (all slots attended, loss masked to the real region);
* bucketed: one ``pack`` per size, three steps accumulated into one backward
  per bucket (no padding at all);
* varlen: one ``pack_varlen`` row holding every sample end to end (no padding),
  one forward and one backward; attention stays inside each sample.

Tokens/s counts real latent tokens only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from unidit.backbones import BackboneConfig, FlagDiT, pack, pack_varlen

from backbone_step import Ours
from harness import Runtime


@dataclass
class MixSizes:
    dim: int = 384
    depth: int = 8
    heads: int = 6
    patch: int = 2
    channels: int = 4
    per_size: int = 1
    text: int = 64
    grids: tuple[tuple[int, int], ...] = ((16, 16), (16, 32), (32, 32))  # 256, 512, 1024 latent tokens


QUICK = MixSizes(dim=64, depth=2, heads=2, per_size=1, text=8, grids=((4, 4), (4, 8), (8, 8)))


def make_steps(s: MixSizes, runtime: Runtime | None = None):
    runtime = runtime or Runtime()
    dev = runtime.device
    cfg = BackboneConfig(arch="flag_dit", dim=s.dim, depth=s.depth, num_heads=s.heads, context_dim=s.dim)
    model = Ours(FlagDiT(cfg), s.channels * s.patch**2).train().to(dev)
    g = torch.Generator().manual_seed(0)
    latents = [torch.randn(s.channels, h * s.patch, w * s.patch, generator=g).to(dev) for h, w in s.grids
               for _ in range(s.per_size)]
    targets = [torch.randn_like(z) for z in latents]
    n = len(latents)
    t = torch.rand(n, generator=g).to(dev)
    context = torch.randn(n, s.text, s.dim, generator=g).to(dev)
    context_mask = torch.ones(n, s.text, dtype=torch.bool, device=dev)
    real_tokens = sum(h * w for h, w in s.grids) * s.per_size

    def loss_of(batch, target_batch, select, t_, ctx, cmask):
        with runtime.autocast():
            pred = model(batch, t_, ctx, cmask)
        return F.mse_loss(pred[select].float(), target_batch.tokens[select], reduction="sum")

    # packed: one pack of the mixed list
    packed, packed_t = pack(latents, s.patch), pack(targets, s.patch)

    def packed_step():
        (loss_of(packed, packed_t, packed.data_mask, t, context, context_mask) / real_tokens).backward()
        model.zero_grad(set_to_none=True)

    # padded: zero-pad every latent to the largest grid
    H = max(h for h, _ in s.grids) * s.patch
    W = max(w for _, w in s.grids) * s.patch

    def pad(z):
        return F.pad(z, (0, W - z.shape[2], 0, H - z.shape[1]))

    padded = pack(torch.stack([pad(z) for z in latents]), s.patch)
    padded_t = pack(torch.stack([pad(z) for z in targets]), s.patch)
    region = pack(torch.stack([pad(torch.ones(1, *z.shape[1:], device=dev)) for z in latents]),
                  s.patch).tokens[..., 0] > 0

    def padded_step():
        (loss_of(padded, padded_t, region, t, context, context_mask) / real_tokens).backward()
        model.zero_grad(set_to_none=True)

    # bucketed: one pack per size
    buckets = []
    for i in range(0, n, s.per_size):
        idx = slice(i, i + s.per_size)
        buckets.append((pack(latents[idx], s.patch), pack(targets[idx], s.patch), t[idx], context[idx],
                        context_mask[idx]))

    def bucketed_step():
        for b, bt, tt, c, cm in buckets:
            (loss_of(b, bt, b.data_mask, tt, c, cm) / real_tokens).backward()
        model.zero_grad(set_to_none=True)

    # varlen: every sample end to end in one row
    row, row_t = pack_varlen(latents, s.patch), pack_varlen(targets, s.patch)

    def varlen_step():
        (loss_of(row, row_t, row.data_mask, t, context, context_mask) / real_tokens).backward()
        model.zero_grad(set_to_none=True)

    slots = {
        "packed": packed.tokens.shape[0] * packed.tokens.shape[1],
        "padded": padded.tokens.shape[0] * padded.tokens.shape[1],
        "bucketed": sum(b.tokens.shape[0] * b.tokens.shape[1] for b, *_ in buckets),
        "varlen": row.tokens.shape[1],
    }
    steps = {"packed": packed_step, "padded": padded_step, "bucketed": bucketed_step, "varlen": varlen_step}
    return steps, real_tokens, slots


def run(s: MixSizes, rounds: int, log=print, runtime: Runtime | None = None) -> dict:
    runtime = runtime or Runtime()
    torch.manual_seed(0)
    fns, real_tokens, slots = make_steps(s, runtime)
    log(f"  mixed batch: {len(s.grids) * s.per_size} samples, {real_tokens} real tokens ...")
    for fn in fns.values():  # warm-up
        fn()
    mem = {k: runtime.peak_memory(fn) for k, fn in fns.items()}
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            runtime.sync()
            t0 = time.perf_counter()
            fn()
            runtime.sync()
            times[k].append(time.perf_counter() - t0)
    return dict(times=times, mem=mem, real_tokens=real_tokens, slots=slots, sizes=s, runtime=runtime)
