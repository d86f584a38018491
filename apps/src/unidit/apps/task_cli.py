"""LightningCLI wiring shared by every task app.

Each app ships a YAML config next to its code; ``run_fit`` parses it as the
default config file, so every field can be overridden on the command line
(``--trainer.max_steps 100``, ``--model.preset tiny``) or by another YAML
(``--config my.yaml``). Extra option groups (e.g. what to write after
training) are plain classes whose typed ``__init__`` becomes a config group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from lightning.pytorch.cli import LightningCLI


class TaskCLI(LightningCLI):
    """LightningCLI with ``--ckpt_path`` (resume; ``last`` = newest in the run) and extra groups."""

    extra_groups: dict[str, type] = {}

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=Optional[str],
            default=None,
            help="Resume training from this Lightning checkpoint ('last' = the newest of this run).",
        )
        for name, cls in self.extra_groups.items():
            parser.add_class_arguments(cls, name)


def build_cli(module_cls, data_cls, config: Path, argv: list[str], extra_groups: dict[str, type] | None = None):
    """Parse ``argv`` over the default ``config`` and instantiate model, data and trainer."""
    cli_cls = type("BoundTaskCLI", (TaskCLI,), {"extra_groups": dict(extra_groups or {})})
    return cli_cls(
        module_cls,
        data_cls,
        args=argv,
        run=False,
        parser_kwargs={"default_config_files": [str(config)]},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )


def run_fit(module_cls, data_cls, config: Path, argv: list[str], extra_groups: dict[str, type] | None = None):
    """Build everything from ``config`` + ``argv`` and train.

    Returns the CLI object (``cli.model``, ``cli.datamodule``, ``cli.trainer``,
    ``cli.config`` for the extra groups) once ``trainer.fit`` has finished.
    """
    cli = build_cli(module_cls, data_cls, config, argv, extra_groups)
    cli.trainer.fit(cli.model, cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))
    return cli
