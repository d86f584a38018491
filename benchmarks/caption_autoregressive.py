"""The diffusion captioner against an autoregressive one of similar size, trained for the same time.

LaDiC (Wang et al. 2024) claims a diffusion captioner matches autoregressive
ones in quality and decodes in a time that does not grow with the caption
(~0.10 s an image against BLIP's 0.17–0.28 s). This measures both claims here::

    uv run unidit fit caption                                   # the diffusion run (fit.yaml)
    uv run python benchmarks/caption_autoregressive.py --caption_run runs/caption/version_0

1. **Equal training time.** One training step of each model (forward, backward,
   fused AdamW, EMA; real batches of the run's size) is timed interleaved A B A B
   in this process (:func:`harness.run_pair`); the autoregressive decoder
   (:mod:`unidit.tasks.caption.autoregressive`, depth 6: 1.7 M parameters against
   the diffusion captioner's 1.9 M) then trains for ``max_steps × t_diffusion /
   t_autoregressive`` steps on the same data, with the same optimiser, schedule
   shape, learning rate, warm-up and EMA.
2. **Quality.** Both caption the run's held-out test scenes and are scored by the
   caption report (BLEU, ROUGE-L, CIDEr-D, METEOR with Java, attribute accuracy);
   the diffusion captioner at the report's steps and at fewer.
3. **Speed.** Captions per second at batch 1 and batch 64; at batch 1 also the
   time of a 20-token caption (the autoregressive decoder forced to 20 tokens;
   the diffusion captioner always generates all 24 positions).

Writes ``benchmarks/CAPTION.md`` (and ``--json``) with the CPU model in the header.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import yaml
from unidit.apps.cli import load_app
from unidit.tasks.caption.autoregressive_task import AutoregressiveCaptionTask
from unidit.tasks.caption.datamodule import CaptionData
from unidit.tasks.caption.evaluate import CaptionReport, evaluate_captions
from unidit.tasks.caption.image_encoder import images_to_tensor
from unidit.tasks.caption.task import CaptionTask
from unidit.training.step_timer import StepTimer, cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import run_pair  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AR_DEPTH = 6  # 1.71 M parameters at width 128: the closest depth to the diffusion captioner's 1.87 M
METRICS = ("BLEU-4", "ROUGE-L", "CIDEr-D", "METEOR", "attribute_accuracy", "object_recall")


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def step_function(task, batch: dict):
    """One training step of ``task`` on ``batch``: loss, backward, fused AdamW, EMA update."""
    optimiser = torch.optim.AdamW(task.denoiser.parameters(), lr=task.lr, betas=(0.9, 0.99), fused=True)

    def step() -> None:
        loss = task.training_step(batch, 0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        task.ema.update(task.denoiser)

    return step


def fresh_diffusion(run_config: dict, tokenizer) -> CaptionTask:
    torch.manual_seed(0)
    task = CaptionTask(**{**run_config["model"], "text_latent": None})
    task.set_tokenizer(tokenizer)
    task.ensure_ema()
    return task.train()


def autoregressive(run_config: dict, tokenizer, **training) -> AutoregressiveCaptionTask:
    model = run_config["model"]
    backbone = model.get("backbone") or {}
    torch.manual_seed(0)
    task = AutoregressiveCaptionTask(
        vocab_size=int(tokenizer.kept_ids.numel()), length=tokenizer.length, dim=backbone.get("dim", 128),
        depth=AR_DEPTH, num_heads=backbone.get("num_heads", 4), context_dim=backbone.get("context_dim", 96),
        image_size=model.get("image_size", 64), image_grid=model.get("image_grid", 8),
        image_channels=model.get("image_channels", 32), lr=model.get("lr", 1e-3),
        warmup_steps=model.get("warmup_steps", 100), ema_decay=model.get("ema_decay", 0.995), **training)
    task.set_tokenizer(tokenizer)
    task.ensure_ema()
    return task


def time_training_steps(diffusion, ar, batch: dict, rounds: int) -> tuple[float, float]:
    """Median seconds per training step of each, timed interleaved."""
    diffusion.warm_latents(batch["caption"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        result = run_pair(step_function(diffusion, batch), step_function(ar, batch), rounds=rounds, warmup=2,
                          names=("diffusion", "autoregressive"))
    return statistics.median(result.times_a), statistics.median(result.times_b)


def train_autoregressive(task: AutoregressiveCaptionTask, data: CaptionData, steps: int, run_config: dict,
                         root: Path) -> float:
    """Train for ``steps`` with a Lightning Trainer like the diffusion run's; returns the median s/step."""
    trainer_config = run_config.get("trainer") or {}
    timer = StepTimer()
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, precision="32-true", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[timer], val_check_interval=trainer_config.get("val_check_interval", 250),
                         check_val_every_n_epoch=None, limit_val_batches=trainer_config.get("limit_val_batches", 2),
                         default_root_dir=str(root), num_sanity_val_steps=0)
    trainer.fit(task, datamodule=data)
    print(timer.summary(trainer), flush=True)
    return statistics.median(timer.seconds[1:] or timer.seconds)


def seconds_per_call(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(diffusion: CaptionTask, ar: AutoregressiveCaptionTask, pictures: torch.Tensor, report: CaptionReport,
          diffusion_steps: list[int]) -> list[dict]:
    """Captions per second at batch 1 and 64, and the batch-1 time of a 20-token caption."""
    one, many = pictures[:1], pictures[:64]
    rows = []
    for steps in diffusion_steps:
        options = replace(report, steps=steps).sampling()
        single = seconds_per_call(lambda: diffusion.sample_captions(one, options), 5)
        batched = seconds_per_call(lambda: diffusion.sample_captions(many, options), 2)
        rows.append({"model": f"diffusion, {steps} {report.sampler} steps", "batch1_per_s": 1 / single,
                     "batch64_per_s": len(many) / batched, "twenty_token_s": single})
    single = seconds_per_call(lambda: ar.sample_captions(one), 5)
    batched = seconds_per_call(lambda: ar.sample_captions(many), 2)
    twenty = seconds_per_call(lambda: ar.sample_indices(one, max_tokens=21, stop_early=False), 5)  # [CLS] + 20
    rows.append({"model": "autoregressive, greedy", "batch1_per_s": 1 / single, "batch64_per_s": len(many) / batched,
                 "twenty_token_s": twenty})
    return rows


def markdown(result: dict) -> str:
    lines = [
        "# Diffusion captioner against an autoregressive one, equal training time",
        "",
        f"CPU: **{result['cpu']}**, torch {torch.__version__}. Regenerate with "
        "`uv run python benchmarks/caption_autoregressive.py --caption_run runs/caption/version_0` "
        "after `uv run unidit fit caption` (nothing else running).",
        "",
        f"Training time: a step takes {result['diffusion_s_per_step']:.3f} s (diffusion, "
        f"{result['diffusion_params'] / 1e6:.2f} M parameters) and {result['ar_s_per_step']:.3f} s "
        f"(autoregressive, {result['ar_params'] / 1e6:.2f} M), timed interleaved in this run; the diffusion run's "
        f"{result['diffusion_steps']} steps are worth {result['ar_steps']} autoregressive steps "
        f"({result['diffusion_steps'] * result['diffusion_s_per_step'] / 60:.1f} min of training each). "
        f"{result['num_images']} held-out test scenes, one caption each.",
        "",
        "| captioner | " + " | ".join(m for m in METRICS if any(m in r["metrics"] for r in result["quality"])) + " |",
        "|---|" + "---|" * sum(any(m in r["metrics"] for r in result["quality"]) for m in METRICS),
    ]
    shown = [m for m in METRICS if any(m in r["metrics"] for r in result["quality"])]
    for row in result["quality"]:
        lines.append(f"| {row['model']} | " + " | ".join(
            f"{row['metrics'][m]:.3f}" if m in row["metrics"] else "-" for m in shown) + " |")
    lines += ["", "| decoder | captions/s, batch 1 | captions/s, batch 64 | s per 20-token caption, batch 1 |",
              "|---|---|---|---|"]
    for row in result["speed"]:
        lines.append(f"| {row['model']} | {row['batch1_per_s']:.1f} | {row['batch64_per_s']:.1f} | "
                     f"{row['twenty_token_s']:.4f} |")
    lines += ["", "The diffusion captioner's time does not depend on the caption's length (it always generates "
              "the 24 latent positions); the autoregressive decoder makes one network call per token (greedy, "
              "stopping when every caption has ended; the 20-token column forces 20)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caption_run", required=True, type=Path,
                        help="a finished `unidit fit caption` run folder (with model/ and config.yaml)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds of the step timing")
    parser.add_argument("--diffusion_steps", type=int, nargs="+", default=[20, 10, 5],
                        help="sampling steps at which the diffusion captioner is scored and timed")
    parser.add_argument("--ar_steps", type=int, default=None, help="train this many steps instead of equal time")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "CAPTION.md")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    run = args.caption_run
    config_file = run / "config.yaml"
    if not config_file.is_file() or not (run / "model").is_dir():
        parser.error(f"--caption_run {run}: expected a `unidit fit caption` run folder with config.yaml and model/")
    run_config = yaml.safe_load(config_file.read_text())
    diffusion = load_app("caption").load(run / "model")
    tokenizer = diffusion.tokenizer
    data_config = {k: v for k, v in (run_config.get("data") or {}).items()}
    data = CaptionData(**data_config)
    data.setup("fit")
    data.setup("test")
    report = CaptionReport(**(run_config.get("report") or {}))

    ar = autoregressive(run_config, tokenizer)
    batch = next(iter(data.train_dataloader()))
    diffusion_s, ar_s = time_training_steps(fresh_diffusion(run_config, tokenizer), ar, batch, args.rounds)
    diffusion_steps = int(run_config["trainer"]["max_steps"])
    ar_steps = args.ar_steps or max(1, round(diffusion_steps * diffusion_s / ar_s))
    print(f"training step: diffusion {diffusion_s:.3f} s, autoregressive {ar_s:.3f} s -> {ar_steps} "
          f"autoregressive steps for the diffusion run's {diffusion_steps}", flush=True)
    ar = autoregressive(run_config, tokenizer)  # untouched by the timing
    train_autoregressive(ar, data, ar_steps, run_config, run / "autoregressive")
    ar.eval()

    test = data.splits["test"]
    image_size = diffusion.denoiser.config.image_size
    quality = []
    for steps in args.diffusion_steps:
        evaluation = evaluate_captions(diffusion, test, replace(report, steps=steps), image_size)
        quality.append({"model": f"diffusion, {steps} {report.sampler} steps",
                        "metrics": evaluation.metrics["generated"]})
    evaluation = evaluate_captions(ar, test, report, image_size)
    quality.append({"model": f"autoregressive (depth {AR_DEPTH}), greedy", "metrics": evaluation.metrics["generated"]})
    quality.append({"model": "reference ceiling", "metrics": evaluation.metrics["reference_ceiling"]})
    pictures = images_to_tensor(np.asarray(test.subset(range(min(64, len(test)))).images(image_size)))
    rows = speed(diffusion, ar, pictures, report, args.diffusion_steps)
    result = {"cpu": cpu_model(), "caption_run": str(run), "diffusion_s_per_step": diffusion_s,
              "ar_s_per_step": ar_s, "diffusion_steps": diffusion_steps, "ar_steps": ar_steps,
              "diffusion_params": parameters(diffusion.denoiser), "ar_params": parameters(ar.denoiser),
              "num_images": evaluation.metrics["num_images"], "quality": quality, "speed": rows}
    args.out.write_text(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
