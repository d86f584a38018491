"""Regenerate BENCHMARKS.md: ``uv run --group bench python benchmarks/run.py [--quick] [--out PATH]``.

CPU, fp32, 2 threads. Every pair runs interleaved A B A B in one process,
warm-up excluded; medians with min–max over the rounds; ratios pair by pair.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import backbone_step  # noqa: E402
import mixed_batch  # noqa: E402
from harness import matmul_flops_per_s, median_range, mib  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds (smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per pair (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    torch.set_num_threads(args.threads)
    import diffusers

    sizes = backbone_step.QUICK if args.quick else backbone_step.Sizes()
    mix = mixed_batch.QUICK if args.quick else mixed_batch.MixSizes()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    started = time.time()
    peak_matmul = matmul_flops_per_s(256 if args.quick else 1024)
    log("backbone training step")
    rows = backbone_step.run(sizes, rounds, log)
    log("mixed-size batches")
    mixed = mixed_batch.run(mix, rounds, log)
    peak_matmul = max(peak_matmul, matmul_flops_per_s(256 if args.quick else 1024))
    elapsed = time.time() - started

    cmd = "uv run --group bench python benchmarks/run.py" + (" --quick" if args.quick else "")
    out = [
        "# Benchmarks against the peers",
        "",
        f"Regenerate with `{cmd}`" + ("" if args.quick else " (`--quick` for a smoke run)") + ".",
        "",
        f"- Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}; "
        f"torch threads {args.threads}; CPU fp32",
        f"- Python {platform.python_version()}, torch {torch.__version__}, diffusers {diffusers.__version__}",
        f"- Rounds: {rounds} timed rounds per case after 1 warm-up step, pairs interleaved A B A B in one "
        f"process; median (min–max); the ratio is taken round by round. Total run time {elapsed:.0f} s.",
        "- Peak memory: process RSS above its level before the step (after gc + malloc_trim), "
        "sampled every 0.5 ms during one extra step.",
        "",
        "## Backbone training step (forward + backward)",
        "",
        f"Batch {sizes.batch}, {sizes.text} text tokens of which half are padding, patch size {sizes.patch}, "
        f"{sizes.channels} latent channels; width {sizes.dim}, depth {sizes.depth}, {sizes.heads} heads on both "
        "sides. Ours = patch-embedding Linear → backbone → output Linear, laid out by `pack` (one [nextline] "
        "token per row, so more tokens than the peer). Speed-up = peer time ÷ our time, per round (> 1: ours "
        "is faster).",
        "",
    ]
    header = ["ours", "peer", "latent tokens", "tokens ours", "tokens peer", "params ours", "params peer",
              "param diff %", "ours s/step", "peer s/step", "speed-up", "peak MiB ours", "peak MiB peer"]
    body = []
    for r in rows:
        res = r["result"]
        diff = 100 * (r["params_ours"] - r["params_theirs"]) / r["params_theirs"]
        body.append([r["ours"], r["theirs"], str(r["latent_tokens"]), str(r["tokens_ours"]), str(r["tokens_theirs"]),
                     str(r["params_ours"]), str(r["params_theirs"]), f"{diff:+.1f}",
                     median_range(res.times_a), median_range(res.times_b), median_range(res.ratios, fmt="{:.2f}"),
                     mib(res.mem_a), mib(res.mem_b)])
    out += table(header, body)

    out += [
        "## Achieved FLOP/s",
        "",
        "FLOPs of one training step counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls and "
        "scaled-dot-product attention, forward and backward; elementwise ops not counted), divided by the "
        "median step time, as a fraction of a dense fp32 square matmul's FLOP/s measured in the same process "
        f"({peak_matmul / 1e9:.1f} GFLOP/s).",
        "",
    ]
    body = []
    for r in rows:
        res = r["result"]
        for name, flops, times in ((r["ours"], r["flops_ours"], res.times_a),
                                   (r["theirs"], r["flops_theirs"], res.times_b)):
            rate = flops / statistics.median(times)
            body.append([name, str(r["latent_tokens"]), f"{flops / 1e9:.2f}", f"{rate / 1e9:.2f}",
                         f"{rate / peak_matmul:.2f}"])
    out += table(["model", "latent tokens", "GFLOP/step", "GFLOP/s", "fraction of matmul"], body)

    s = mixed["sizes"]
    grids = ", ".join(f"{h}×{w}" for h, w in s.grids)
    out += [
        "## Mixed-size batches",
        "",
        f"Our FlagDiT training step (width {s.dim}, depth {s.depth}) on {s.per_size} latent(s) of each of the patch "
        f"grids {grids} (token counts differ 4×), {s.text} text tokens. *packed*: one `pack` of the mixed list "
        "(PAD slots masked from attention and loss); *padded*: every latent zero-padded to the largest grid, all "
        "slots attended, loss masked to the real region; *bucketed*: one `pack` per size, a backward per bucket. "
        "Tokens/s counts real latent tokens only.",
        "",
    ]
    body = []
    for k, times in mixed["times"].items():
        body.append([k, str(mixed["slots"][k]), str(mixed["real_tokens"]), median_range(times),
                     f"{mixed['real_tokens'] / statistics.median(times):.0f}", mib(mixed["mem"][k])])
    out += table(["layout", "slots computed", "real tokens", "s/step", "real tokens/s", "peak MiB"], body)

    notes = ROOT / "benchmarks" / "NOTES.md"
    if notes.exists() and not args.quick:
        out += [notes.read_text().rstrip(), ""]
    args.out.write_text("\n".join(out))
    log(f"wrote {args.out} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
