"""``unidit fit|sample|eval caption``: image captioning by a flow on text latents (LaDiC, Wang et al. 2024).

``fit`` needs a text-latent tokenizer: ``--model.text_latent <folder>`` (a
variant folder of ``unidit fit text-latent``). Without one it first fits the
``head`` decoder with that app's config on the captions of the same embedded
scenes (extra options through ``--text_latent_fit.args``), under
``<default_root_dir>/text_latent``, and uses ``<that run>/head``; a resumed run
(``--ckpt_path``) uses the tokenizer it was trained with. It then trains the
captioner from ``fit.yaml``, exports the EMA weights to ``<run>/model`` with a
copy of the tokenizer in ``<run>/model/text_latent`` (so the folder is
self-contained), and writes ``<run>/report``: metrics.json (BLEU-1..4, ROUGE-L,
CIDEr-D and the attribute accuracy on the held-out test scenes), a few example
pictures with their captions, captions.json and samples.png. ``sample``
captions given pictures (``--image a.png b.png``); ``eval`` prints the metric table.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from unidit.apps.arguments import UsageError, input_file, output_folder
from unidit.apps.task_app import TaskApp
from unidit.apps.task_cli import checkpoint_hparam
from unidit.apps.text_latent.app import fit_config, parse_fit
from unidit.tasks.caption.data import read_image
from unidit.tasks.caption.datamodule import CaptionData
from unidit.tasks.caption.evaluate import CaptionReport, evaluate_captions, generate_captions, write_examples
from unidit.tasks.caption.image_encoder import images_to_tensor
from unidit.tasks.caption.task import CaptionTask
from unidit.training.export import load_task

TEXT_LATENT_FOLDER = "text_latent"  # an export carries its tokenizer here (see CaptionApp.load)


@dataclass
class TextLatentFitOptions:
    """How ``unidit fit caption`` fits its text-latent tokenizer when ``--model.text_latent`` is not given.

    Attributes:
        args: extra ``unidit fit text-latent`` options, e.g. ``["--training.steps", "100"]``.
    """

    args: list[str] | None = None


class CaptionApp(TaskApp, name="caption", task=CaptionTask, data=CaptionData, report=CaptionReport,
                 media="captions (captions.json, the pictures and samples.png)",
                 extra_groups={"text_latent_fit": TextLatentFitOptions}):
    # -- the tokenizer ---------------------------------------------------------------------
    def before_fit(self, cli, ckpt_path: str | None) -> None:
        """Name the tokenizer: the one given, the one a resumed checkpoint used, or one fitted now."""
        if cli.model.text_latent is None:
            folder = checkpoint_hparam(ckpt_path, "text_latent") or self._fit_tokenizer(cli)
            cli.model.text_latent = str(folder)
            cli.model.hparams["text_latent"] = str(folder)  # recorded in checkpoints and the export

    def _fit_tokenizer(self, cli) -> Path:
        """Fit the text-latent tokenizer on this run's embedded scenes; returns its variant folder."""
        data = cli.datamodule.hparams
        if data.source != "embedded":
            raise ValueError(f"--model.text_latent is required for data.source {data.source!r}: `unidit fit "
                             "text-latent` fits on the embedded scenes only; give a tokenizer folder fitted on "
                             "your captions (<run>/head of unidit fit text-latent)")
        argv = ["--decoders", "[head]", "--out", str(Path(cli.trainer.default_root_dir) / "text_latent"),
                "--seed", str(data.seed)]
        if data.cache_dir is not None:
            argv += ["--cache_dir", str(data.cache_dir)]
        argv += list(cli.config["text_latent_fit"].get("args") or [])
        print(f"no --model.text_latent given: fitting the tokenizer first (unidit fit text-latent {' '.join(argv)})",
              flush=True)
        config = parse_fit(argv)
        run = fit_config(config, sizes={"train": data.num_train, "val": data.num_val, "test": data.num_test})
        return (run / config.decoders[0]).resolve()

    def after_export(self, task: CaptionTask, model_dir: Path) -> None:
        shutil.copytree(task.text_latent, model_dir / TEXT_LATENT_FOLDER, dirs_exist_ok=True)
        print(f"copied the text-latent tokenizer into {model_dir / TEXT_LATENT_FOLDER}", flush=True)

    def load(self, path) -> CaptionTask:
        """The captioner of an export (with its bundled tokenizer, if any) or of a Lightning checkpoint."""
        task = load_task(CaptionTask, path)
        bundled = Path(path) / TEXT_LATENT_FOLDER
        if (bundled / "config.json").is_file():
            task.text_latent = str(bundled)  # the copy travels with the export; the recorded path may not
        return task.eval()

    # -- eval --------------------------------------------------------------------------------
    def measure(self, task: CaptionTask, data: CaptionData, report: CaptionReport):
        data.setup("test")
        return evaluate_captions(task, data.splits["test"], report, task.denoiser.config.image_size)

    # -- sample: pictures in, captions out ------------------------------------------------------
    inputs = "pictures"

    def add_input_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--image", nargs="+", action="extend", required=True,
                            help="pictures to caption (PNG or JPEG; resized to the model's input size)")

    def sample(self, argv: list[str]) -> Path:
        """``unidit sample caption``: ``--num`` captions of each ``--image``, printed and written to ``--out``."""
        args = self.sample_parser().parse_args(argv)
        paths = [input_file(path, "--image") for path in args.image]
        out = output_folder(args.out)
        options = self.sampling_options(args)
        task = self.load_checkpoint(args.ckpt)
        size = task.denoiser.config.image_size
        try:
            pictures = np.stack([read_image(path, size) for path in paths])  # (N, S, S, 3) uint8
        except ValueError as error:
            raise UsageError(f"--image {error}") from None
        repeated = np.repeat(pictures, args.num, axis=0)  # each picture --num times, in order
        sources = [str(path) for path in paths for _ in range(args.num)]
        captions = generate_captions(task, images_to_tensor(repeated), options, args.batch_size)
        examples = [{"image": source, "generated": text} for source, text in zip(sources, captions)]
        write_examples(out, repeated, examples)
        for example in examples:
            print(f"{example['image']}: {example['generated']}", flush=True)
        print(f"wrote {len(captions)} captions (captions.json, pictures and samples.png) to {out}", flush=True)
        return out


APP = CaptionApp()
