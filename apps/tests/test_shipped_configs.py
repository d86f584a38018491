"""Every YAML config shipped with an app parses and builds its model, data and trainer."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from unidit.apps.cli import APPS, load_app
from unidit.apps.task_app import TaskApp
from unidit.apps.task_cli import build_cli

APPS_ROOT = Path(importlib.import_module("unidit.apps").__path__[0])
SHIPPED = sorted(APPS_ROOT.rglob("*.yaml"))


def parts(app) -> tuple[type, type, Path, dict]:
    """(model class, data class, fit YAML, extra config groups) of a TaskApp or a tokenizer app module."""
    if isinstance(app, TaskApp):
        return app.task_class, app.data_class, app.config, {"report": app.report_class, **app.extra_groups}
    return app.MODEL_CLASS, app.DATA_CLASS, app.FIT_CONFIG, app.EXTRA_GROUPS


def test_every_app_ships_a_config():
    assert SHIPPED, APPS_ROOT
    for name in APPS:
        assert parts(load_app(name))[2] in SHIPPED, name


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: str(p.relative_to(APPS_ROOT)))
def test_shipped_config_builds(config: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_cls, data_cls, _, groups = next(parts(load_app(n)) for n in APPS if parts(load_app(n))[2] == config)
    raw = yaml.safe_load(config.read_text())
    cli = build_cli(model_cls, data_cls, config, [], groups)
    assert isinstance(cli.model, model_cls)
    assert isinstance(cli.datamodule, data_cls)
    assert cli.trainer.max_steps == raw["trainer"]["max_steps"]
    for key, value in raw["model"].items():
        assert cli.model.hparams[key] == value, key


def test_unknown_config_key_is_rejected(tmp_path, monkeypatch):
    from jsonargparse import ArgumentError

    monkeypatch.chdir(tmp_path)
    model_cls, data_cls, config, groups = parts(load_app("shape3d"))
    with pytest.raises(ArgumentError, match="no_such_option"):
        build_cli(model_cls, data_cls, config, ["--model.no_such_option", "1"], groups)
