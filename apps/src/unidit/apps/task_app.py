"""A task's app is a declaration; ``unidit fit|sample|eval <task>`` comes from here.

An app names its task class (a :class:`~unidit.training.FlowMatchingTask`),
its data class (a LightningDataModule), its report class (a
:class:`~unidit.training.sampling.ReportOptions` subclass) and its YAML config,
and implements two methods: ``measure`` (the task's evaluation, returning an
:class:`~unidit.training.report.Evaluation`) and ``write_samples`` (what
``unidit sample`` generates and writes). Everything else is shared:

- ``fit``: LightningCLI over the YAML (every field overridable), exact resume
  (``--ckpt_path``), export of the EMA weights to ``<run>/model``, the report
  in ``<run>/report``, and a closing line with the seconds per step, the
  precision and the CPU;
- ``sample``: ``--ckpt --prompt … --out`` plus every sampling option, whose
  defaults are the report's, plus the task's own options;
- ``eval``: the report of a checkpoint, with the data and report options of
  the YAML as defaults, so it reproduces ``fit``'s report.

Hooks (``prepare_argv``, ``before_fit``, ``after_export``, ``prepare_eval``,
``load``) let a task train its tokenizer first or bundle it with the export.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, ClassVar, Optional

import yaml
from jsonargparse import ArgumentParser
from unidit.apps.arguments import UsageError, UsageParser, add_dataclass_options, output_folder, positive_int
from unidit.apps.task_cli import build_cli, fit_cli, resolve_ckpt_path, run_directory, step_summary
from unidit.training.captions import check_caption
from unidit.training.export import export_task, load_task
from unidit.training.report import Evaluation
from unidit.training.sampling import SamplingOptions


class TaskApp:
    """The declaration of one task's app: subclass it with the task's parts as class keywords,

    ``class Shape3DApp(TaskApp, name="shape3d", task=Shape3DTask, data=Shape3DData, report=Shape3DReport,
    media="point clouds (.ply + .png)")``, and implement :meth:`measure` and :meth:`write_samples`.

    Keywords: ``name`` (the app on the command line), ``task`` (the LightningModule trained and
    sampled), ``data`` (the LightningDataModule), ``report`` (a ``ReportOptions`` dataclass),
    ``media`` (what ``unidit sample`` writes, for its ``--help``), ``config`` (the ``fit`` YAML
    beside the subclass's module, ``fit.yaml`` by default) and ``extra_groups`` (further config
    groups of ``fit``: name -> dataclass).
    """

    name: ClassVar[str]
    task_class: ClassVar[type]
    data_class: ClassVar[type]
    report_class: ClassVar[type]
    config: ClassVar[Path]
    media: ClassVar[str] = "samples"
    extra_groups: ClassVar[dict[str, type]] = {}
    sampling_class: ClassVar[type] = SamplingOptions
    """The sampler options ``unidit sample`` takes (a discrete task's differ: masked-diffusion options)."""

    def __init_subclass__(cls, *, name: str, task: type, data: type, report: type, media: str = "samples",
                          config: str = "fit.yaml", extra_groups: dict[str, type] | None = None, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.name, cls.task_class, cls.data_class, cls.report_class, cls.media = name, task, data, report, media
        cls.config = Path(sys.modules[cls.__module__].__file__).parent / config
        cls.extra_groups = dict(extra_groups or {})

    # -- what a task implements --------------------------------------------------------
    def measure(self, task, data, report) -> Evaluation:  # pragma: no cover - abstract
        """Generate from the evaluation captions and measure."""
        raise NotImplementedError

    def add_sample_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The task's own ``unidit sample`` options (e.g. ``--seconds``, ``--image``)."""

    def write_samples(self, task, args: argparse.Namespace, captions: list[str], options: SamplingOptions,
                      batch_size: int, out: Path) -> str:  # pragma: no cover - abstract
        """Generate for ``captions`` (each prompt ``--num`` times) and write the files; return what was written."""
        raise NotImplementedError

    # -- hooks ---------------------------------------------------------------------------
    def prepare_argv(self, argv: list[str]) -> list[str]:
        """The ``fit`` arguments before LightningCLI parses them (e.g. add a trained tokenizer's path)."""
        return argv

    def before_fit(self, cli, ckpt_path: str | None) -> None:
        """After the CLI has built model, data and trainer, before training."""

    def after_export(self, task, model_dir: Path) -> None:
        """After the EMA weights were exported to ``model_dir`` (e.g. bundle the tokenizer)."""

    def prepare_eval(self, task, data) -> None:
        """Before ``unidit eval`` measures (e.g. hand the task's tokenizer to the data)."""

    def load(self, path: str | Path):
        """The task from an export folder or a Lightning checkpoint."""
        return load_task(self.task_class, path)

    def load_checkpoint(self, path: str | Path):
        """:meth:`load`, also from a joint run's export (``unidit fit joint``): this task's part of it."""
        part = joint_part(path, self.name)
        if part is None:
            return self.load(path)
        folder, modality = part
        task = self.load(folder)
        for network in (task.denoiser, task.sampling_network()):
            network.modality = modality  # the joint backbone's modality embedding of this task
        return task

    # -- the verbs -----------------------------------------------------------------------
    def train(self, argv: list[str]):
        """Parse ``argv`` over the YAML, build model, data and trainer, and train; returns the LightningCLI.

        The report options are checked before training starts, so a bad one
        fails at once instead of after the run.
        """
        argv = list(argv)
        if not asks_for_help(argv):  # --help must not train a tokenizer first
            argv = self.prepare_argv(argv)
        cli = build_cli(self.task_class, self.data_class, self.config, argv,
                        {"report": self.report_class, **self.extra_groups})
        self.report_class(**cli.config["report"])
        ckpt_path = resolve_ckpt_path(cli.trainer, cli.config.get("ckpt_path"))
        self.before_fit(cli, ckpt_path)
        fit_cli(cli, ckpt_path)
        return cli

    def fit(self, argv: list[str]) -> Path:
        """``unidit fit <task>``: train, export ``<run>/model``, write ``<run>/report``; returns the run folder."""
        cli = self.train(argv)
        run_dir = run_directory(cli.trainer)
        if not cli.trainer.is_global_zero:
            return run_dir
        model_dir = export_task(cli.model, run_dir / "model")
        print(f"exported EMA weights to {model_dir}", flush=True)
        self.after_export(cli.model, model_dir)
        self._report(cli.model, cli.datamodule, self.report_class(**cli.config["report"]), run_dir / "report")
        print(step_summary(cli.trainer), flush=True)
        return run_dir

    def sample(self, argv: list[str]) -> Path:
        """``unidit sample <task>``: media files for prompts from a checkpoint."""
        parser = self.sample_parser()
        args = parser.parse_args(argv)
        prompts = [check_caption(p, "--prompt") for p in args.prompt]
        out = output_folder(args.out)
        options = self.sampling_options(args)
        task = self.load_checkpoint(args.ckpt)
        captions = [p for p in prompts for _ in range(args.num)]
        print(self.write_samples(task, args, captions, options, args.batch_size, out), flush=True)
        return out

    def sample_parser(self) -> argparse.ArgumentParser:
        parser = UsageParser(prog=f"unidit sample {self.name}", description=f"Write {self.media} for {self.inputs}.")
        parser.add_argument("--ckpt", required=True, help="export folder (<run>/model) or Lightning .ckpt")
        self.add_input_arguments(parser)
        parser.add_argument("--out", required=True, help="output folder (created if missing)")
        parser.add_argument("--num", type=positive_int, default=1, help="samples per prompt (default: %(default)s)")
        defaults = self.report_class()
        parser.add_argument("--batch_size", type=positive_int, default=defaults.batch_size,
                            help="samples generated at a time (default: %(default)s)")
        add_dataclass_options(parser, self.sampling_class, defaults, "sampling (defaults: the report's)")
        self.add_sample_arguments(parser)
        return parser

    inputs: ClassVar[str] = "prompts"
    """What ``unidit sample`` conditions on, for its ``--help``."""

    def add_input_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The conditioning inputs of ``unidit sample``: ``--prompt`` (a task conditioned otherwise overrides this)."""
        parser.add_argument("--prompt", action="append", required=True, help="caption; repeat for several")

    def sampling_options(self, args: argparse.Namespace) -> SamplingOptions:
        """The parsed sampler options of ``unidit sample`` (a bad value is a usage error)."""
        try:
            return self.sampling_class(**{name: getattr(args, name) for name in _field_names(self.sampling_class)})
        except ValueError as error:
            raise UsageError(f"--{error}") from None

    def evaluate(self, argv: list[str]) -> dict:
        """``unidit eval <task>``: the metric table of a checkpoint (``--out`` also writes the report)."""
        parser = ArgumentParser(prog=f"unidit eval {self.name}", exit_on_error=False,
                                description=f"Print the {self.name} metric table of a checkpoint.")
        parser.add_argument("--ckpt", type=str, required=True, help="export folder (<run>/model) or Lightning .ckpt")
        parser.add_argument("--out", type=Optional[str], default=None, help="also write metrics.json and samples here")
        parser.add_class_arguments(self.data_class, "data")
        parser.add_class_arguments(self.report_class, "report")
        parser.set_defaults(self._fit_defaults(("data", "report")))
        config = parser.instantiate_classes(parser.parse_args(argv))
        out = output_folder(config.out) if config.out else None
        task = self.load_checkpoint(config.ckpt)
        self.prepare_eval(task, config.data)
        return self._report(task, config.data, config.report, out)

    # -- shared pieces ---------------------------------------------------------------
    def _report(self, task, data, report, out: Path | None) -> dict:
        task.eval()
        evaluation = self.measure(task, data, report)
        print(evaluation.table, flush=True)
        if out is not None:
            evaluation.write(out)
            print(f"wrote metrics.json, {evaluation.summary} to {out}", flush=True)
        return evaluation.metrics

    def _fit_defaults(self, groups: tuple[str, ...]) -> dict[str, Any]:
        """``{"data.seed": 0, "report.steps": 30, …}``: the YAML's values for these groups."""
        config = yaml.safe_load(self.config.read_text()) or {}
        return {f"{group}.{key}": value for group in groups for key, value in (config.get(group) or {}).items()}


def asks_for_help(argv: list[str]) -> bool:
    """Whether ``argv`` only asks for the command's help or its configuration (nothing is trained)."""
    return any(a in ("-h", "--help") or a.startswith("--print_config") for a in argv)


JOINT_FILE = "joint.json"  # in a joint run's export: {"tasks": [...], "modalities": {task: id}}


def joint_part(path: str | Path, task: str) -> tuple[Path, int] | None:
    """``(folder of task's part, its modality id)`` when ``path`` is a joint export, else None.

    A joint export lacking ``task`` is a ValueError naming the file and the tasks it holds.
    """
    meta_path = Path(path) / JOINT_FILE
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        tasks, modalities = list(meta["tasks"]), dict(meta["modalities"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{meta_path}: expected a joint export's JSON with 'tasks' and 'modalities': {error}") from None
    if task not in tasks:
        raise ValueError(f"--ckpt {path}: a joint checkpoint of the tasks {', '.join(tasks)}; it has no {task!r} part "
                         f"(train one with: unidit fit joint --tasks {','.join([*tasks, task])})")
    return Path(path) / task, int(modalities[task])


def _field_names(cls) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]
