"""LightningCLI wiring shared by every task app.

Each app ships a YAML config next to its code; ``run_fit`` parses it as the
default config file, so every field can be overridden on the command line
(``--trainer.max_steps 100``, ``--model.preset tiny``) or by another YAML
(``--config my.yaml``). Extra option groups (e.g. what to write after
training) are plain classes whose typed ``__init__`` becomes a config group.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException
from unidit.training.checkpointing import AtomicCheckpointIO, Preempted, PreemptionCheckpoint, find_last_checkpoint
from unidit.training.step_timer import StepTimer


class TaskCLI(LightningCLI):
    """LightningCLI with ``--ckpt_path`` (resume; ``last`` = newest of earlier runs) and extra groups.

    Every trainer it builds writes checkpoints atomically (:class:`AtomicCheckpointIO`,
    unless ``--trainer.plugins`` names another checkpoint IO) and writes a resumable
    ``last.ckpt`` on SIGTERM / Ctrl-C (:class:`PreemptionCheckpoint`).
    """

    extra_groups: dict[str, type] = {}

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=Optional[str],
            default=None,
            help="Resume training exactly from this Lightning checkpoint ('last' = the newest last.ckpt "
            "of earlier runs under the logger's folder / default_root_dir).",
        )
        for name, cls in self.extra_groups.items():
            parser.add_class_arguments(cls, name)

    def before_instantiate_classes(self) -> None:
        """A logger whose ``save_dir`` was left at the config's default writes under ``default_root_dir``.

        So ``--trainer.default_root_dir DIR`` puts everything a run writes (logs,
        checkpoints, the exported model, the report) under ``DIR``;
        ``--trainer.logger.init_args.save_dir`` still chooses another folder.
        """
        trainer, defaults = self.config["trainer"], self.parser.get_defaults()["trainer"]
        logger, default_logger = trainer.get("logger"), defaults.get("logger")
        init_args = getattr(logger, "init_args", None)
        if init_args is None or "save_dir" not in init_args:
            return
        default_save_dir = getattr(getattr(default_logger, "init_args", None), "save_dir", None)
        if init_args.save_dir == default_save_dir and trainer.get("default_root_dir"):
            init_args.save_dir = trainer["default_root_dir"]

    def _instantiate_trainer(self, config: dict, callbacks: list):
        config = dict(config)
        config["precision"] = cpu_precision(config.get("precision"), config.get("accelerator"))
        plugins = config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(hasattr(p, "save_checkpoint") and hasattr(p, "load_checkpoint") for p in plugins):
            plugins.append(AtomicCheckpointIO())
        config["plugins"] = plugins
        callbacks = list(callbacks)
        if not any(isinstance(c, PreemptionCheckpoint) for c in (config.get("callbacks") or [])):
            callbacks.append(PreemptionCheckpoint())
        callbacks.append(StepTimer())  # the seconds per step of the closing summary
        return super()._instantiate_trainer(config, callbacks)


def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX tiles)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def cpu_precision(precision, accelerator) -> str | int | None:
    """``precision``, or ``"32-true"`` for bf16 on a CPU that lacks native bf16 matrix units.

    bf16 autocast is what makes the t2v default fit its time budget on a CPU with
    AVX512-BF16 (1.24x per step at width 128, a 192-wide model for the cost of a
    128-wide one in fp32); without those units oneDNN emulates bf16 and the step
    gets slower than fp32, so the run keeps fp32 and says so.
    """
    wants_bf16 = isinstance(precision, str) and precision.startswith("bf16")
    gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    on_cpu = accelerator == "cpu" or (accelerator in (None, "auto") and not gpu)
    if wants_bf16 and on_cpu and not native_cpu_bf16():
        print(f"precision {precision}: this CPU has no native bf16 (AVX512-BF16 / AMX), training in 32-true "
              "instead (fp32 is faster here)", flush=True)
        return "32-true"
    return precision


def build_cli(module_cls, data_cls, config: Path, argv: list[str], extra_groups: dict[str, type] | None = None):
    """Parse ``argv`` over the default ``config`` and instantiate model, data and trainer."""
    cli_cls = type("BoundTaskCLI", (TaskCLI,), {"extra_groups": dict(extra_groups or {})})
    with _only_program_name_in_sys_argv():  # the arguments are ``argv``; LightningCLI warns when sys.argv has more
        return cli_cls(
            module_cls,
            data_cls,
            args=argv,
            run=False,
            parser_kwargs={"default_config_files": [str(config)], "exit_on_error": False},
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
        )


@contextlib.contextmanager
def _only_program_name_in_sys_argv():
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def run_fit(module_cls, data_cls, config: Path, argv: list[str], extra_groups: dict[str, type] | None = None):
    """Build everything from ``config`` + ``argv`` and train.

    Returns the CLI object (``cli.model``, ``cli.datamodule``, ``cli.trainer``,
    ``cli.config`` for the extra groups) once ``trainer.fit`` has finished.
    """
    cli = build_cli(module_cls, data_cls, config, argv, extra_groups)
    fit_cli(cli, resolve_ckpt_path(cli.trainer, cli.config.get("ckpt_path")))
    return cli


def fit_cli(cli, ckpt_path: str | None) -> None:
    """``cli.trainer.fit`` on the CLI's model and data; a SIGTERM between batches ends as :class:`Preempted`."""
    try:
        cli.trainer.fit(cli.model, cli.datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:  # SIGTERM outside a training batch; PreemptionCheckpoint wrote last.ckpt
        raise Preempted(f"stopped by SIGTERM at step {cli.trainer.global_step}") from None


def resolve_ckpt_path(trainer, ckpt_path: str | None) -> str | None:
    """``last`` → the newest ``last.ckpt`` of earlier runs (see :func:`find_last_checkpoint`).

    Any other path must exist: a typo must not silently start a fresh run.
    """
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        found = find_last_checkpoint(trainer)
        if found is None:
            print(f"--ckpt_path last: no last.ckpt under {trainer.default_root_dir}; starting from scratch", flush=True)
            return None
        print(f"resuming from {found}", flush=True)
        return str(found)
    if ckpt_path in ("best", "hpc", "registry") or "://" in ckpt_path:
        return ckpt_path
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"--ckpt_path {ckpt_path}: no such checkpoint file")
    return ckpt_path


def step_summary(trainer) -> str:
    """The closing line of every ``unidit fit``: steps, seconds per step, precision, device and CPU model."""
    return next(c for c in trainer.callbacks if isinstance(c, StepTimer)).summary(trainer)


def run_directory(trainer) -> Path:
    """The folder of this run: where its checkpoints live (``<run>/checkpoints``), whatever the logger."""
    callback = trainer.checkpoint_callback
    if callback is not None and callback.dirpath:
        return Path(callback.dirpath).parent
    return Path(trainer.log_dir or trainer.default_root_dir)


def checkpoint_hparam(ckpt_path: str | None, name: str):
    """The hyper-parameter ``name`` a Lightning checkpoint was trained with (e.g. its tokenizer's folder), or None.

    A resumed run must use the tokenizer it started with, not train a new one.
    """
    if ckpt_path is None or not Path(ckpt_path).is_file():
        return None
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"--ckpt_path {ckpt_path}: cannot read it as a Lightning checkpoint ({error})") from error
    return (checkpoint.get("hyper_parameters") or {}).get(name)
