"""``unidit fit|sample|eval fmri``: captions decoded from brain activity (Brain Captioning).

``fit`` needs a trained caption model: ``--caption <caption run>/model`` (an
export of ``unidit fit caption``). Without one, on the simulated data, it first
fits one with the caption app on the same scenes (extra options through
``--caption_fit``), under ``<out>/caption``, as the caption app fits its
tokenizer. It then computes the captioner's image features of every stimulus,
fits the mappers of ``--mapping.kinds`` (ridge, single-subject MLP,
cross-subject MLP) from each subject's voxels to those features, and writes
``<out>/version_N/model`` (the mappers, ``fmri.json`` and a copy of the caption
model in ``model/caption``) and ``<out>/version_N/report`` (metrics.json with
the caption metrics and retrieval of every condition, captions.json, samples.png).

``eval`` prints the metric table of an export; ``sample`` decodes a caption per
given trial: ``--image_id`` (responses of the data set recorded in the export,
repeats averaged) or ``--voxels`` (an ``(N, V)`` .npy of raw voxel patterns).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from jsonargparse import ArgumentParser
from unidit.apps.arguments import UsageError, input_file, output_folder
from unidit.apps.caption.app import APP as CAPTION_APP
from unidit.tasks.fmri.data import FmriData
from unidit.tasks.fmri.decoder import BrainDecoder, MappingOptions
from unidit.tasks.fmri.decoding import FeatureTable, fit_decoder, measure
from unidit.tasks.fmri.evaluate import FmriReport, decode_captions
from unidit.training.export import write_file_atomically
from unidit.training.sampling import SamplingOptions
from unidit.training.step_timer import cpu_model

FIT_CONFIG = Path(__file__).parent / "fit.yaml"
META_FILE = "fmri.json"  # in an export: the data and mapping options, and the caption model's origin
CAPTION_FOLDER, MAPPING_FOLDER = "caption", "mapping"


@dataclass
class FmriFit:
    """What ``unidit fit fmri`` does.

    Attributes:
        caption: a caption model export (``<caption run>/model``); None = fit one first (simulated data only).
        caption_fit: extra ``unidit fit caption`` options used when ``caption`` is None.
        data: the responses (simulated NSD or a real NSD folder).
        mapping: the mappers fitted.
        report: decoding and scoring of the shared test images.
        out: runs go to ``<out>/version_N``.
    """

    caption: Optional[str] = None
    caption_fit: list[str] = field(default_factory=list)
    data: FmriData = field(default_factory=FmriData)
    mapping: MappingOptions = field(default_factory=MappingOptions)
    report: FmriReport = field(default_factory=FmriReport)
    out: str = "runs/fmri"


def _parser(prog: str, description: str) -> ArgumentParser:
    parser = ArgumentParser(prog=prog, exit_on_error=False, default_config_files=[str(FIT_CONFIG)],
                            description=description)
    parser.add_class_arguments(FmriFit, as_group=False)
    parser.add_argument("--config", action="config")
    return parser


def parse_fit(argv: list[str]) -> FmriFit:
    """``fit.yaml`` overridden by ``argv`` as an :class:`FmriFit`."""
    parser = _parser("unidit fit fmri", "Map fMRI voxels onto a caption model's image features and decode captions.")
    config = parser.instantiate_classes(parser.parse_args(argv))
    return FmriFit(**{k: v for k, v in config.items() if k in FmriFit.__dataclass_fields__})


class FmriApp:
    """The three verbs of ``unidit … fmri`` (registered as ``unidit.apps.fmri.app:APP``)."""

    name = "fmri"
    FIT_CONFIG = FIT_CONFIG  # a plain config (no Lightning trainer: ridge and a small MLP)

    def fit(self, argv: list[str]) -> Path:
        begin = time.perf_counter()
        config = parse_fit(argv)
        run = _next_version(Path(config.out))
        caption = Path(config.caption) if config.caption else self._fit_caption(config, run.parent / "caption")
        if not (caption / "task.json").is_file():
            raise UsageError(f"--caption {caption}: no task.json; expected a caption model export "
                             "(<run>/model of unidit fit caption)")
        task = CAPTION_APP.load(caption)
        dataset = config.data.load()
        features = FeatureTable(task, dataset)
        decoder = fit_decoder(task, dataset, config.mapping, features)
        print(f"fitted {', '.join(decoder.kinds)} on {len(dataset.subjects)} subject(s) in "
              f"{sum(decoder.seconds.values()):.1f} s (ridge alphas {decoder.alphas()})", flush=True)
        model = run / "model"
        decoder.save(model / MAPPING_FOLDER)
        shutil.copytree(caption, model / CAPTION_FOLDER, dirs_exist_ok=True)
        meta = {"data": _plain(asdict(config.data)), "mapping": {"kinds": decoder.kinds},
                "caption_source": str(caption.resolve())}
        write_file_atomically(model / META_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
        print(f"exported the mappers and the caption model to {model}", flush=True)
        evaluation = measure(task, decoder, dataset, config.report, features, {"cpu": cpu_model()})
        evaluation.metrics["fit_seconds_total"] = round(time.perf_counter() - begin, 1)
        self._write(evaluation, run / "report")
        return run

    def _fit_caption(self, config: FmriFit, root: Path) -> Path:
        """Fit a caption model on the simulated data's scenes (the caption app, tokenizer included); its export."""
        data = config.data
        if data.source != "simulated":
            raise UsageError(f"--caption is required for data.source {data.source!r}: give a caption model export "
                             "(<run>/model of unidit fit caption) trained on pictures like the stimuli")
        sizes = data.simulation.shape_sizes
        argv = ["--trainer.default_root_dir", str(root), "--data.seed", str(data.simulation.scene_seed),
                "--data.num_train", str(sizes["train"]), "--data.num_val", str(sizes["val"]),
                "--data.num_test", str(sizes["test"])]
        if data.cache_dir is not None:
            argv += ["--data.cache_dir", str(data.cache_dir)]
        argv += list(config.caption_fit)
        print(f"no --caption given: fitting a caption model first (unidit fit caption {' '.join(argv)})", flush=True)
        return CAPTION_APP.fit(argv) / "model"

    def evaluate(self, argv: list[str]) -> dict:
        parser = ArgumentParser(prog="unidit eval fmri", exit_on_error=False,
                                description="Print the fmri metric table of an export (<run>/model).")
        parser.add_argument("--ckpt", type=str, required=True, help="export folder of unidit fit fmri (<run>/model)")
        parser.add_argument("--out", type=Optional[str], default=None, help="also write metrics.json and samples here")
        parser.add_class_arguments(FmriReport, "report")
        parser.add_argument("--data", type=Optional[FmriData], default=None,
                            help="the responses (default: those the export was fitted on)")
        args = parser.parse_args(argv)
        config = parser.instantiate_classes(args)
        task, decoder, data = self.load(config.ckpt)
        dataset = (config.data or data).load()
        evaluation = measure(task, decoder, dataset, config.report, extra={"cpu": cpu_model()})
        self._write(evaluation, output_folder(config.out) if config.out else None)
        return evaluation.metrics

    def sample(self, argv: list[str]) -> list[str]:
        parser = ArgumentParser(prog="unidit sample fmri", exit_on_error=False,
                                description="Decode a caption for given trials of one subject.")
        parser.add_argument("--ckpt", type=str, required=True, help="export folder of unidit fit fmri (<run>/model)")
        parser.add_argument("--subject", type=str, default="subj01", help="the subject whose responses these are")
        parser.add_argument("--image_id", type=Optional[list[int]], default=None,
                            help="stimulus ids of the subject's trials (repeats averaged) in the recorded data set")
        parser.add_argument("--voxels", type=Optional[str], default=None, help="an (N, V) .npy of raw voxel patterns")
        parser.add_argument("--mapper", type=Optional[Literal["ridge", "mlp", "cross_subject"]], default=None,
                            help="mapper to use (default: the export's first)")
        parser.add_argument("--out", type=str, required=True, help="folder for captions.json")
        parser.add_argument("--batch_size", type=int, default=50, help="trials decoded at a time")
        parser.add_class_arguments(SamplingOptions, "sampling")
        parser.set_defaults({"sampling.steps": FmriReport().steps})
        config = parser.instantiate_classes(parser.parse_args(argv))
        if (config.image_id is None) == (config.voxels is None):
            raise UsageError("give exactly one of --image_id (trials of the recorded data set) and --voxels (a .npy)")
        out = output_folder(config.out)
        task, decoder, data = self.load(config.ckpt)
        mapper = config.mapper or decoder.kinds[0]
        if config.voxels is not None:
            voxels = np.load(input_file(config.voxels, "--voxels"))
            names = [f"{Path(config.voxels).name}[{k}]" for k in range(len(voxels))]
        else:
            responses = data.load().subjects.get(config.subject)
            if responses is None:
                raise UsageError(f"--subject {config.subject}: the export's data has {decoder.subjects}")
            rows = {int(i): k for k, i in enumerate(responses.image_ids)}
            unknown = [i for i in config.image_id if i not in rows]
            if unknown:
                raise UsageError(f"--image_id {unknown[0]}: {config.subject} saw no such stimulus "
                                 f"(ids {int(responses.image_ids.min())}..{int(responses.image_ids.max())})")
            voxels = responses.voxels[[rows[i] for i in config.image_id]]
            names = [f"image {i}" for i in config.image_id]
        try:
            features = decoder.predict(mapper, config.subject, voxels)  # (N, S·Dc)
        except ValueError as error:
            raise UsageError(str(error)) from None
        captions = decode_captions(task, features, config.sampling, config.batch_size)
        examples = [{"trial": n, "subject": config.subject, "mapper": mapper, "generated": c}
                    for n, c in zip(names, captions)]
        out.mkdir(parents=True, exist_ok=True)
        (out / "captions.json").write_text(json.dumps(examples, indent=2))
        for example in examples:
            print(f"{example['trial']}: {example['generated']}", flush=True)
        print(f"wrote {len(captions)} captions to {out / 'captions.json'}", flush=True)
        return captions

    def load(self, path: str | Path):
        """``(caption task, brain decoder, data options)`` of an export folder."""
        folder = Path(path)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: not found; expected an export of unidit fit fmri (<run>/model)")
        meta = json.loads(meta_path.read_text())
        task = CAPTION_APP.load(folder / CAPTION_FOLDER)
        return task, BrainDecoder.load(folder / MAPPING_FOLDER), FmriData(**meta["data"])

    @staticmethod
    def _write(evaluation, out: Path | None) -> None:
        print(evaluation.table, flush=True)
        if out is not None:
            evaluation.write(out)
            print(f"wrote metrics.json, {evaluation.summary} to {out} (CPU: {cpu_model()})", flush=True)


def _plain(value):
    """JSON-ready copy of a dataclass dict (tuples to lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _next_version(root: Path) -> Path:
    root = output_folder(root)
    taken = [int(p.name.split("_")[1]) for p in root.glob("version_*") if p.name.split("_")[1].isdigit()] \
        if root.is_dir() else []
    return root / f"version_{max(taken, default=-1) + 1}"


APP = FmriApp()
