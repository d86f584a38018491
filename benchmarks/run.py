"""Regenerate BENCHMARKS.md: ``uv run --group bench python benchmarks/run.py [--quick] [--compile]``.

On a CPU: fp32 and bf16 autocast, 2 threads, written to BENCHMARKS.md. On a
CUDA machine the same command measures bf16 (flash attention through SDPA)
and writes benchmarks/GPU.md, which the CPU run folds into BENCHMARKS.md.
Every pair runs interleaved A B A B in one process, warm-up excluded;
medians with min–max over the rounds; ratios pair by pair.
"""

from __future__ import annotations

import argparse
import dataclasses
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
import sampling  # noqa: E402
import vae  # noqa: E402
from unidit.backbones.mlp import swiglu_hidden_dim  # noqa: E402
from unidit.training.host_memory import ENV_SWITCH, retain_freed_host_memory  # noqa: E402
from unidit.training.step_timer import cpu_model  # noqa: E402

from harness import (  # noqa: E402
    Runtime,
    gpu_bf16_peak,
    matmul_flops_per_s,
    median_range,
    mib,
    sustained_matmul_flops_per_s,
)

ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    """The CPU as ``unidit fit`` names it: model name, family/model numbers, widest vector unit."""
    return cpu_model(with_threads=False)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows), ""]


SECTIONS = ("backbone", "mixed", "sampling", "vae")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds (smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per pair (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true",
                        help="add torch.compile rows (each transformer block compiled) for both sides, run last")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--large", action=argparse.BooleanOptionalAction, default=None,
                        help="add the GPU-sized backbone case (width 1152, depth 28; default: on for CUDA)")
    parser.add_argument("--out", type=Path, default=None, help="default: BENCHMARKS.md (CPU), benchmarks/GPU.md (CUDA)")
    args = parser.parse_args(argv)
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    runtime = Runtime(args.device)
    out_path = args.out or (ROOT / "benchmarks" / "GPU.md" if runtime.cuda else ROOT / "BENCHMARKS.md")
    rounds = args.rounds or (2 if args.quick else 5)
    large = (runtime.cuda and not args.quick) if args.large is None else args.large
    torch.set_num_threads(args.threads)
    # as every `unidit` command does; it is process-wide, so both sides of every pair run under it
    host_memory_retained = retain_freed_host_memory()
    if runtime.cuda:
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    import diffusers

    sizes = backbone_step.QUICK if args.quick else backbone_step.Sizes()
    precisions = ("bf16",) if runtime.cuda else ("fp32", "bf16")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    started = time.time()
    matmul_n = 256 if args.quick else (8192 if runtime.cuda else 1024)
    peak_matmul = {p: matmul_flops_per_s(matmul_n, runtime=runtime.with_precision(p)) for p in precisions}
    reference_seconds = 0.05 if args.quick else 1.0

    def reference(rt: Runtime) -> float:
        return sustained_matmul_flops_per_s(matmul_n, reference_seconds, rt)

    body: list[str] = []

    def write(done: bool) -> None:
        """Rewrite the whole file after every section, so a late failure keeps what was measured."""
        cmd = "uv run --group bench python benchmarks/run.py" + (" --quick" if args.quick else "")
        cmd += " --compile" if args.compile else ""
        cmd += f" --sections {','.join(sections)}" if tuple(sections) != SECTIONS else ""
        machine = (f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}" if runtime.cuda else
                   f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch threads {args.threads}")
        elapsed = time.time() - started
        status = (f"Total run time {elapsed:.0f} s." if done else
                  f"**Incomplete**: written after {elapsed:.0f} s, while the run was still going.")
        head = [
            "# Benchmarks against the peers" + (f" — GPU ({torch.cuda.get_device_name()})" if runtime.cuda else ""),
            "",
            f"Regenerate with `{cmd}`" + ("" if args.quick else " (`--quick` for a smoke run)") + ".",
            "",
            f"- Machine: {machine}; {platform.system()} {platform.release()}",
            f"- Python {platform.python_version()}, torch {torch.__version__}, diffusers {diffusers.__version__}",
            f"- Rounds: {rounds} timed rounds per case after a warm-up step, pairs interleaved A B A B in one "
            f"process; median (min–max); the ratio is taken round by round. {status}",
            "- Host memory: " + ("glibc `malloc` keeps freed memory for reuse (`unidit.training.host_memory`, "
                                 "as `unidit` commands run; process-wide, so both sides of every pair); "
                                 f"`{ENV_SWITCH}=0` keeps the C library's defaults."
                                 if host_memory_retained else "the C library's defaults."),
            "- Peak memory: " + ("`torch.cuda.max_memory_allocated` above the allocation before the step."
                                 if runtime.cuda else "the most tensor memory PyTorch's CPU allocator held during "
                                 "one extra step, above its level at the start (`torch.profiler` memory events)."),
            "",
        ]
        tail = []
        if done and not runtime.cuda and not args.quick:
            task_sections = ROOT / "benchmarks" / "TASK_SECTIONS.md"  # captioning, joint, transfer: their own scripts
            if task_sections.exists():
                tail += [task_sections.read_text().rstrip(), ""]
            gpu = ROOT / "benchmarks" / "GPU.md"
            if gpu.exists():
                text = gpu.read_text().replace("\n## ", "\n### ").replace("# Benchmarks against the peers — ", "## ")
                tail += [text.rstrip(), ""]
            notes = ROOT / "benchmarks" / "NOTES.md"
            if notes.exists():
                tail += [notes.read_text().rstrip(), ""]
        out_path.write_text("\n".join(head + body + tail))

    if "backbone" in sections:
        log("backbone training step")
        rows = backbone_step.run(sizes, rounds, log, runtime, precisions, reference=reference)
        if large:
            log("backbone training step, GPU-sized")
            rows += backbone_step.run(backbone_step.LARGE, max(3, rounds - 2), log, runtime, precisions[-1:],
                                      label="GPU-sized: ", reference=reference)
        body += backbone_table(rows)
        body += flops_table(rows, peak_matmul, runtime)
        write(done=False)
    if "mixed" in sections:
        log("mixed-size batches")
        mix = mixed_batch.QUICK if args.quick else mixed_batch.MixSizes()
        body += mixed_table(mixed_batch.run(mix, rounds, log, runtime.with_precision(precisions[0])))
        write(done=False)
    if "sampling" in sections:
        log("sampling")
        sample_sizes = sampling.QUICK if args.quick else sampling.SampleSizes()
        sample_rows = sampling.run(sample_sizes, max(2, rounds - 2), log, runtime.with_precision(precisions[0]))
        body += sampling_table(sample_rows, sample_sizes, runtime.with_precision(precisions[0]))
        write(done=False)
    if "vae" in sections:
        log("tokenizers")
        vae_rows = vae.run(vae.QUICK if args.quick else vae.VAESizes(), rounds, log, runtime)
        body += vae_table(vae_rows, runtime)
        write(done=False)
    if args.compile and "backbone" in sections:
        # last: compiling is the slowest part, and everything above is already on disk if it fails;
        # on a GPU only the 4096-token GPU-sized case is compiled (compile time, not step time, dominates)
        log("backbone training step, torch.compile")
        compiled_sizes = dataclasses.replace(backbone_step.LARGE, grids=(64,)) if large else sizes
        compiled: list[dict] = []
        before = list(body)
        for arch in backbone_step.PEERS:
            compiled += backbone_step.run(compiled_sizes, rounds, log, runtime, precisions[:1], compiled=(False, True),
                                          label="GPU-sized: " if large else "", archs=(arch,))
            body[:] = before + compile_table(compiled)
            write(done=False)
    for p in precisions:
        peak_matmul[p] = max(peak_matmul[p], matmul_flops_per_s(matmul_n, runtime=runtime.with_precision(p)))
    write(done=True)
    log(f"wrote {out_path} in {time.time() - started:.0f} s")
    return 0


def size_note(sz) -> str:
    return (f"batch {sz.batch}, {sz.text} text tokens of which half are padding, patch size {sz.patch}, "
            f"{sz.channels} latent channels; width {sz.dim}, depth {sz.depth}, {sz.heads} heads on both sides")


def backbone_table(rows: list[dict]) -> list[str]:
    sizes = list(dict.fromkeys(r["label"] + size_note(r["sizes"]) for r in rows))
    out = [
        "## Backbone training step (forward + backward)",
        "",
        "Cases: " + "; ".join(sizes) + ". Ours = patch-embedding Linear → backbone → output Linear, laid out by "
        "`pack` (one [nextline] token per row, so more tokens than the peer). bf16 = `torch.autocast` around the "
        "forward. Speed-up = peer time ÷ our time, per round (> 1: ours is faster)." + flag_mlp_note(rows),
        "",
    ]
    header = ["ours", "peer", "precision", "mode", "latent tokens", "tokens ours", "tokens peer", "params ours",
              "params peer", "param diff %", "ours s/step", "peer s/step", "speed-up", "peak MiB ours",
              "peak MiB peer"]
    body = []
    for r in rows:
        res = r["result"]
        diff = 100 * (r["params_ours"] - r["params_theirs"]) / r["params_theirs"]
        cells = [r["label"] + r["ours"], r["theirs"], r["precision"], "compiled" if r["compiled"] else "eager",
                 str(r["latent_tokens"]), str(r["tokens_ours"]), str(r["tokens_theirs"]),
                 str(r["params_ours"]), str(r["params_theirs"]), f"{diff:+.1f}"]
        if res is None:
            body.append(cells + ["out of memory"] * 5)
            continue
        body.append(cells + [median_range(res.times_a), median_range(res.times_b),
                             median_range(res.ratios, fmt="{:.2f}"), mib(res.mem_a), mib(res.mem_b)])
    return out + table(header, body)


def flag_mlp_note(rows: list[dict]) -> str:
    """How our Flag-DiT's SwiGLU width was set for each case (see ``Sizes.match_params``)."""
    notes = []
    for r in rows:
        if r["arch"] != "flag_dit":
            continue
        sz = r["sizes"]
        peer_hidden = swiglu_hidden_dim(sz.dim, 4.0)
        how = ("narrowed from the peer's {peer} to {ours} so parameter counts match" if sz.match_params else
               "{ours}, the same as the peer's")
        note = f"{r['label']}Flag-DiT SwiGLU hidden width " + how.format(peer=peer_hidden, ours=r["mlp_hidden_ours"])
        if note not in notes:
            notes.append(note)
    return (" " + "; ".join(notes) + " (Notes: Parameter counts).") if notes else ""


def compile_table(rows: list[dict]) -> list[str]:
    """Eager and compiled rows side by side: each side's gain from compiling, and the compiled ratio."""
    out = [
        "## Backbone training step with `torch.compile`",
        "",
        "Regional compilation on both sides: `torch.compile(dynamic=False)` on each transformer block (our "
        "`blocks`, Lumina-Next's `layers`, SD3's `transformer_blocks`), the glue eager; two warm-up steps "
        f"excluded. {rows[0]['label']}{size_note(rows[0]['sizes'])}; {rows[0]['precision']}. Compile gain = eager "
        "median ÷ compiled median for that side; speed-up = peer ÷ ours, both compiled.",
        "",
    ]
    body = []
    by_key = {(r["arch"], r["latent_tokens"], r["compiled"]): r for r in rows}
    for (arch, tokens, compiled), r in by_key.items():
        if compiled:
            continue
        c = by_key.get((arch, tokens, True))
        if r["result"] is None or c is None or c["result"] is None:
            body.append([r["ours"], r["theirs"], str(tokens)] + ["out of memory"] * 5)
            continue
        e, k = r["result"], c["result"]
        gain_a = statistics.median(e.times_a) / statistics.median(k.times_a)
        gain_b = statistics.median(e.times_b) / statistics.median(k.times_b)
        body.append([r["ours"], r["theirs"], str(tokens), median_range(k.times_a), median_range(k.times_b),
                     f"{gain_a:.2f}", f"{gain_b:.2f}", median_range(k.ratios, fmt="{:.2f}")])
    header = ["ours", "peer", "latent tokens", "ours s/step (compiled)", "peer s/step (compiled)",
              "compile gain ours", "compile gain peer", "speed-up (compiled)"]
    return out + table(header, body)


def flops_table(rows: list[dict], peak_matmul: dict[str, float], runtime: Runtime) -> list[str]:
    card_peak = gpu_bf16_peak() if runtime.cuda else None
    rates = ", ".join(f"{p}: {v / 1e9:.1f} GFLOP/s" for p, v in peak_matmul.items())
    out = [
        "## Achieved FLOP/s",
        "",
        "FLOPs of one training step counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls and "
        "scaled-dot-product attention, forward and backward, attention by PyTorch's formulas: 4·B·H·Lq·Lk·Dh "
        "forward, 2.5× that backward; elementwise ops not counted; PyTorch 2.11 has no formula for the CPU "
        "attention kernel, so `backbone_step.CPU_ATTENTION_FLOPS` adds the same one), over the step time. "
        "*Matmul GFLOP/s* is a dense square matmul in the same process and precision, run back to back for "
        "about a second after every round's pair (`harness.sustained_matmul_flops_per_s`); *fraction of "
        "matmul* divides each round's step rate by that round's matmul rate, median (min–max) over the "
        "rounds. *Fraction of best matmul* divides the median step rate by the fastest single matmul of ten "
        f"timed at the start and end of the run ({rates}), a stricter yardstick"
        + (f"; MFU against the card's dense bf16 peak ({card_peak / 1e12:.0f} TFLOP/s)." if card_peak else "."),
        "",
    ]
    body = []
    for r in rows:
        res = r["result"]
        if res is None:
            continue
        for name, flops, times in ((r["label"] + r["ours"], r["flops_ours"], res.times_a),
                                   (r["label"] + r["theirs"], r["flops_theirs"], res.times_b)):
            rate = flops / statistics.median(times)
            fractions = [flops / t / ref for t, ref in zip(times, res.reference, strict=True)]
            row = [name, r["precision"], "compiled" if r["compiled"] else "eager", str(r["latent_tokens"]),
                   f"{flops / 1e9:.2f}", f"{rate / 1e9:.2f}", f"{statistics.median(res.reference) / 1e9:.1f}",
                   median_range(fractions, fmt="{:.2f}"), f"{rate / peak_matmul[r['precision']]:.2f}"]
            body.append(row + ([f"{rate / card_peak:.3f}"] if card_peak else []))
    header = ["model", "precision", "mode", "latent tokens", "GFLOP/step", "GFLOP/s", "matmul GFLOP/s",
              "fraction of matmul", "fraction of best matmul"]
    return out + table(header + (["MFU"] if card_peak else []), body)


def mixed_table(mixed: dict) -> list[str]:
    s = mixed["sizes"]
    grids = ", ".join(f"{h}×{w}" for h, w in s.grids)
    out = [
        "## Mixed-size batches",
        "",
        f"Our FlagDiT training step ({mixed['runtime'].describe()}; width {s.dim}, depth {s.depth}) on {s.per_size} latent(s) of each of the patch "
        f"grids {grids} (token counts differ 4×), {s.text} text tokens. *packed*: one `pack` of the mixed list "
        "(PAD slots masked from attention and loss); *padded*: every latent zero-padded to the largest grid, all "
        "slots attended, loss masked to the real region; *bucketed*: one `pack` per size, a backward per bucket; "
        "*varlen*: one `pack_varlen` row with every sample end to end (no padding), one forward and one backward, "
        "attention kept inside each sample (`unidit.backbones.varlen`). Tokens/s counts real latent tokens only; "
        "*vs padded* = padded time ÷ this layout's time, round by round.",
        "",
    ]
    padded = mixed["times"]["padded"]
    body = []
    for k, times in mixed["times"].items():
        ratios = [p / x for p, x in zip(padded, times, strict=True)]
        body.append([k, str(mixed["slots"][k]), str(mixed["real_tokens"]), median_range(times),
                     f"{mixed['real_tokens'] / statistics.median(times):.0f}", median_range(ratios, fmt="{:.2f}"),
                     mib(mixed["mem"][k])])
    header = ["layout", "slots computed", "real tokens", "s/step", "real tokens/s", "vs padded", "peak MiB"]
    return out + table(header, body)


def sampling_table(rows: list[dict], s, runtime: Runtime) -> list[str]:
    m = s.model
    out = [
        "## Sampling",
        "",
        f"Seconds per generated sample: one {m.grids[0] ** 2}-token latent, CFG scale {s.cfg_scale} with "
        "the conditional and unconditional rows in one batched call, the same loop for both sides "
        f"({runtime.describe()}). The peer runs Euler; our variants add FORA-style step caching (blocks "
        "recomputed on one call in *cache interval*, first 2 calls always computed) and Heun with fewer steps. "
        "*Network calls* counts our backbone evaluations (each on the doubled CFG batch). Speed-up = peer time "
        "÷ our time.",
        "",
    ]
    body = []
    for r in rows:
        res = r["result"]
        calls = r["steps"] * (2 if r["sampler"] == "heun" else 1) - (1 if r["sampler"] == "heun" else 0)
        computed = calls if r["interval"] == 1 else min(calls, 2 + (calls - 2) // r["interval"])
        body.append([f"{r['sampler']} {r['steps']}", str(r["interval"]), f"{computed}/{calls}",
                     f"euler {r['peer_steps']}", median_range(res.times_a),
                     median_range(res.times_b), median_range(res.ratios, fmt="{:.2f}"), mib(res.mem_a),
                     mib(res.mem_b)])
    header = ["ours", "cache interval", "network calls computed", "peer", "ours s/sample", "peer s/sample", "speed-up",
              "peak MiB ours", "peak MiB peer"]
    return out + table(header, body)


def vae_table(rows: list[dict], runtime: Runtime) -> list[str]:
    out = [
        "## Tokenizers (VAE encode / decode)",
        "",
        "Our audio VAE against `AutoencoderOobleck` (same base width, channel multipliers, strides and latent "
        "channels) and our video VAE (`ltx` preset: 32×32 spatial, 8× temporal, 128 channels, LTX's stage "
        "layout) against "
        "`AutoencoderKLLTXVideo` with the same stage widths, compression, latent channels and residual blocks per "
        f"stage, {runtime.describe()}. Encode returns the posterior mean; decode reads that latent (the video "
        "decoders without timestep conditioning on both sides: diffusers' LTX decoder built with this block "
        "layout fails when given a timestep). The streamed rows run our VAE over the longer clip one latent "
        "frame at a time (`latent_frames_per_chunk`: cached causal convolutions, the same result as the whole "
        "clip) against the peer on the whole clip. Throughput in seconds of audio or video frames per "
        "second; speed-up = peer time ÷ our time.",
        "",
    ]
    body = []
    for r in rows:
        res = r["result"]
        rate = r["units"] / statistics.median(res.times_a)
        body.append([r["ours"], r["theirs"], r["stage"], "×".join(map(str, r["input"])),
                     "×".join(map(str, r["latent_ours"])), "×".join(map(str, r["latent_theirs"])),
                     str(r["params_ours"]), str(r["params_theirs"]), median_range(res.times_a),
                     median_range(res.times_b), f"{rate:.1f}", median_range(res.ratios, fmt="{:.2f}"),
                     mib(res.mem_a), mib(res.mem_b)])
    header = ["ours", "peer", "stage", "input", "latent ours", "latent peer", "params ours", "params peer",
              "ours s/call", "peer s/call", "ours units/s", "speed-up", "peak MiB ours", "peak MiB peer"]
    return out + table(header, body)


if __name__ == "__main__":
    raise SystemExit(main())
