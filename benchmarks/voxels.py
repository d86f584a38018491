"""shape3d default step on a CPU: operator profile, voxelizer samplers, caption embedding.

``uv run python benchmarks/voxels.py profile|ops|step|captions [--threads 2] [--rounds 9]``

* ``profile``: one forward + backward of the shape3d default denoiser (preset
  small, width 128, depth 4, 4 heads, r = 16, patch 4, 16 grid channels; 32
  clouds of 2048 points, per-point t, 16 context tokens of width 384), every
  aten operator timed by wall clock (``perf_counter`` around each call in a
  ``TorchDispatchMode``: CPU operators are synchronous), grouped by operator,
  with the share of the voxelizer (its forward operators and the backward
  nodes its forward created).
* ``ops``: devoxelize forward + backward, ``grid_sample`` vs ``gather``.
* ``step``: the whole denoiser forward + backward with either sampler.
* ``captions``: the shape3d default's training captions embedded one per
  encoder call vs batched with ``pad_multiple`` (each caption padded to a fixed
  length of its own), and the bits of one caption across batch mates.

A/B pairs run interleaved in one process (A B A B ..., warm-up excluded) and
report the per-round ratio's median and range, so load from other processes on
the machine cancels out of the ratio more than out of the seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from unidit.training.host_memory import retain_freed_host_memory  # noqa: E402


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


# ------------------------------------------------------------------ fixtures
def denoiser_and_batch(seed: int = 0):
    from unidit.tasks.shape3d.denoiser import PointCloudDenoiser, PointDenoiserConfig

    torch.manual_seed(seed)
    model = PointCloudDenoiser(
        PointDenoiserConfig(
            preset="small",
            backbone={"dim": 128, "depth": 4, "num_heads": 4},
            resolution=16,
            patch_size=4,
            grid_channels=16,
            point_hidden=64,
        )
    )
    _trained_like_point_head(model)
    g = torch.Generator().manual_seed(seed)
    batch, num_points = 32, 2048
    x = torch.randn(batch, num_points, 3, generator=g) * 0.5  # (B, N, 3)
    t = torch.rand(batch, 1, generator=g).expand(batch, num_points).clone()  # (B, N)
    t[:3, :1000] = 0.0  # three clouds completing a held-clean half: per-point t
    context = torch.randn(batch, 16, 384, generator=g)  # (B, S, Dc)
    context_mask = torch.ones(batch, 16, dtype=torch.bool)  # (B, S)
    return model, (x, t, context, context_mask)


def _trained_like_point_head(model) -> None:
    """A fresh model's last point layer is zero, so every gradient upstream of it is zero (same work, odd data)."""
    torch.nn.init.normal_(model.point_mlp[-1].weight, std=0.02)


def train_step(model, inputs) -> Callable[[], None]:
    def step() -> None:
        out = model(*inputs)  # (B, N, 3)
        out.square().mean().backward()
        model.zero_grad(set_to_none=True)

    return step


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def report_pair(times: dict[str, list[float]], base: str) -> None:
    for name, ts in times.items():
        ratios = [a / b for a, b in zip(ts, times[base], strict=True)]
        print(
            f"  {name:24s} median {statistics.median(ts) * 1e3:8.1f} ms (min {min(ts) * 1e3:.1f})   "
            f"/ {base}: {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
        )


# ------------------------------------------------------------------- profile
class OpClock(TorchDispatchMode):
    """Wall time and call count of every aten operator run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.time: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        t0 = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        self.time[name] += time.perf_counter() - t0
        self.calls[name] += 1
        return out


class RegionClock:
    """Wall time of tagged functions: their forward call plus the backward nodes their forward created.

    A backward node is timed from its pre-hook to its hook (the CPU autograd
    engine runs one node at a time), so work outside aten (NumPy) counts too.
    """

    def __init__(self) -> None:
        self.time: dict[str, float] = defaultdict(float)
        self._started: dict[int, float] = {}

    def tag(self, region: str, fn: Callable) -> Callable:
        def wrapped(*args, **kwargs):
            stop = [a.grad_fn for a in args if isinstance(a, torch.Tensor) and a.grad_fn is not None]
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.time[region] += time.perf_counter() - t0
            outs = out if isinstance(out, tuple) else (out,)
            todo = [o.grad_fn for o in outs if isinstance(o, torch.Tensor) and o.grad_fn is not None]
            seen: list = []
            while todo:
                node = todo.pop()
                if node is None or any(node is n for n in stop) or any(node is n for n in seen):
                    continue
                seen.append(node)
                node.register_prehook(self._pre(node))
                node.register_hook(self._post(node, region))
                todo.extend(next_node for next_node, _ in node.next_functions)
            return out

        return wrapped

    def _pre(self, node):
        def hook(grad_outputs):
            self._started[id(node)] = time.perf_counter()

        return hook

    def _post(self, node, region: str):
        def hook(grad_inputs, grad_outputs):
            self.time[region] += time.perf_counter() - self._started.pop(id(node))

        return hook


def timed_step(model, step: Callable[[], None], op_clock: OpClock | None = None) -> tuple[float, RegionClock]:
    """One step with the voxelizer's regions timed (and every operator, given an ``OpClock``)."""
    regions = RegionClock()
    vox = model.voxelizer
    vox.voxelize = regions.tag("voxelize", vox.voxelize)
    vox.devoxelize = regions.tag("devoxelize", vox.devoxelize)
    try:
        with op_clock if op_clock is not None else contextlib.nullcontext():
            t0 = time.perf_counter()
            step()
            wall = time.perf_counter() - t0
    finally:
        del vox.voxelize, vox.devoxelize  # back to the class's methods
    return wall, regions


def cmd_profile(args) -> None:
    model, inputs = denoiser_and_batch()
    for sampler in args.samplers:
        model.voxelizer.sampler = sampler
        step = train_step(model, inputs)
        for _ in range(3):
            step()
        shares = defaultdict(list)
        for _ in range(args.rounds):
            wall, regions = timed_step(model, step)
            shares["step"].append(wall)
            for region in ("voxelize", "devoxelize"):
                shares[region].append(regions.time[region] / wall)
        print(f"\nsampler={sampler}: step median {statistics.median(shares['step']) * 1e3:.0f} ms "
              f"over {args.rounds} plain steps; voxelizer share of each step's wall time (median, min-max):")
        for region in ("voxelize", "devoxelize"):
            xs = shares[region]
            print(f"  {region:10s} {statistics.median(xs) * 100:5.1f}% ({min(xs) * 100:.1f}-{max(xs) * 100:.1f})")
        clock = OpClock()
        wall, _ = timed_step(model, step, clock)
        total = sum(clock.time.values())
        print(f"  one step under the operator clock: {wall * 1e3:.0f} ms, operators {total * 1e3:.0f} ms, "
              f"{sum(clock.calls.values())} calls")
        print(f"  {'operator':52s} {'ms':>8s} {'calls':>6s} {'share':>6s}")
        for name, seconds in sorted(clock.time.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"  {name:52s} {seconds * 1e3:8.1f} {clock.calls[name]:6d} {seconds / total * 100:5.1f}%")


# ----------------------------------------------------------------------- ops
def cmd_ops(args) -> None:
    from unidit.tokenizers.voxels import Voxelizer

    g = torch.Generator().manual_seed(0)
    batch, num_points, channels, r = 32, 2048, 16, 16
    points = torch.randn(batch, num_points, 3, generator=g) * 0.5  # (B, N, 3)
    features = torch.randn(batch, num_points, 5, generator=g)  # (B, N, 5)
    grid = torch.randn(batch, channels, r, r, r, generator=g, requires_grad=True)  # (B, C, r, r, r)
    grad_out = torch.randn(batch, num_points, channels, generator=g)  # (B, N, C)
    coords = Voxelizer(r).grid_coords(points)  # (B, N, 3)

    def devoxelize(sampler: str) -> Callable[[], None]:
        vox = Voxelizer(r, sampler=sampler)

        def run() -> None:
            vox.devoxelize(grid, coords).backward(grad_out)
            grid.grad = None

        return run

    def forward_only(sampler: str) -> Callable[[], None]:
        vox = Voxelizer(r, sampler=sampler)

        def run() -> None:
            with torch.no_grad():
                vox.devoxelize(grid, coords)

        return run

    vox = Voxelizer(r)
    print("devoxelize forward + backward (32 x 2048 points, 16 channels, r = 16):")
    report_pair(interleaved({"grid_sample": devoxelize("grid_sample"), "gather": devoxelize("gather")},
                            args.rounds), "grid_sample")
    print("devoxelize forward only:")
    report_pair(interleaved({"grid_sample": forward_only("grid_sample"), "gather": forward_only("gather")},
                            args.rounds), "grid_sample")
    print("voxelize (5 features), for scale:")
    report_pair(interleaved({"voxelize": lambda: vox.voxelize(features, points)}, args.rounds), "voxelize")


def cmd_step(args) -> None:
    model, inputs = denoiser_and_batch()
    step = train_step(model, inputs)

    def with_sampler(sampler: str) -> Callable[[], None]:
        def run() -> None:
            model.voxelizer.sampler = sampler
            step()

        return run

    print("shape3d default denoiser forward + backward (32 clouds x 2048 points):")
    report_pair(interleaved({"grid_sample": with_sampler("grid_sample"), "gather": with_sampler("gather")},
                            args.rounds), "grid_sample")


# ------------------------------------------------------------------ captions
def shape3d_training_captions() -> list[str]:
    """The shape3d default training set's 2400 captions (862 distinct), in dataset order."""
    import tempfile

    from unidit.tasks.shape3d.data import generate_embedded

    with tempfile.TemporaryDirectory() as cache:  # the default cache folder stays untouched
        return list(generate_embedded(cache_dir=cache)["train"].captions)


def first_epoch(captions: list[str], batch: int = 32, dropout: float = 0.1, seed: int = 0) -> list[list[str]]:
    """One epoch's caption batches: shuffled, 10% replaced by the null caption (CFG dropout)."""
    import random

    rng = random.Random(seed)
    order = rng.sample(captions, len(captions))
    order = ["" if rng.random() < dropout else c for c in order]
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def cmd_captions(args) -> None:
    from unidit.backbones.text_encoder import CaptionEmbeddingCache, TextEncoder

    encoder = TextEncoder(max_length=args.max_length)
    captions = shape3d_training_captions()
    distinct = list(dict.fromkeys(captions))
    counts = encoder.token_counts(distinct)
    print(f"{len(captions)} training captions, {len(distinct)} distinct, {min(counts)}-{max(counts)} tokens "
          f"(mean {statistics.mean(counts):.1f}); encoder max_length {args.max_length}")

    # Bits: one caption alone, then among 1 ... 40 (and 63, 64) batch mates at the front, middle and end,
    # each time in a cache of the same batch_size (its calls have that many rows).
    probe, mates = distinct[0], distinct[1:]
    for k in args.pad_multiples:
        differ = []
        for size in [*range(2, 41), 63, 64]:
            alone = CaptionEmbeddingCache(encoder, batch_size=size, pad_multiple=k)([probe])[0][0]
            for at in (0, size // 2, size - 1):
                batch = [*mates[: size - 1]]
                batch.insert(at, probe)
                cache = CaptionEmbeddingCache(encoder, batch_size=size, pad_multiple=k)
                row = cache(batch)[0][at][: alone.shape[0]]
                if not torch.equal(row, alone):
                    differ.append((size, at))
        print(f"pad_multiple={k}: the probe's embedding differs from its lone one in {len(differ)} of 126 "
              f"batchings {differ[:5]}")
    alone = CaptionEmbeddingCache(encoder, batch_size=1)([probe])[0][0]
    plain = CaptionEmbeddingCache(encoder, batch_size=64)
    row = plain([probe, *mates[:63]])[0][0][: alone.shape[0]]
    print(f"pad_multiple=None (pad to the batch's longest): probe in a batch of 64 equals it alone: "
          f"{torch.equal(row, CaptionEmbeddingCache(encoder, batch_size=1)([probe])[0][0])}")

    epoch = first_epoch(captions)

    def fill(batch_size: int, pad_multiple: int | None, batches: list[list[str]]) -> Callable[[], None]:
        def run() -> None:
            cache = CaptionEmbeddingCache(encoder, batch_size=batch_size, pad_multiple=pad_multiple)
            for batch in batches:
                cache(batch)

        return run

    variants = {"batch_size=1": (1, None)}
    variants.update({f"batch_size={b}, pad_multiple={k}": (b, k) for b in args.batch_sizes for k in args.pad_multiples})
    variants[f"batch_size={args.batch_sizes[0]}, unpadded"] = (args.batch_sizes[0], None)
    print(f"\nfirst epoch, {len(epoch)} steps of 32 captions (each miss embedded when its step first needs it):")
    report_pair(interleaved({n: fill(*v, epoch) for n, v in variants.items()}, args.rounds, warmup=0), "batch_size=1")
    print(f"\nall {len(distinct)} distinct captions in one cache call:")
    report_pair(interleaved({n: fill(*v, [distinct]) for n, v in variants.items()}, args.rounds, warmup=0),
                "batch_size=1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("profile", "ops", "step", "captions"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--samplers", nargs="+", default=["grid_sample", "gather"], help="profile: samplers")
    parser.add_argument("--top", type=int, default=15, help="profile: operators listed")
    parser.add_argument("--max-length", type=int, default=64, help="captions: encoder max_length (the default)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32], help="captions: encoder batch sizes")
    parser.add_argument("--pad-multiples", type=int, nargs="+", default=[8, 16], help="captions: pad_multiple")
    args = parser.parse_args(argv)
    retain_freed_host_memory()  # as every unidit command does
    torch.set_num_threads(args.threads)
    print(f"{cpu_name()}, {args.threads} threads, torch {torch.__version__}")
    {"profile": cmd_profile, "ops": cmd_ops, "step": cmd_step, "captions": cmd_captions}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
