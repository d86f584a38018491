"""Every YAML config shipped with an app parses and builds its model, data and trainer."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from unidit.apps.cli import TASK_APPS
from unidit.apps.task_cli import build_cli

APPS_ROOT = Path(importlib.import_module("unidit.apps").__path__[0])
SHIPPED = sorted(APPS_ROOT.rglob("*.yaml"))


def test_every_app_ships_a_config():
    assert SHIPPED, APPS_ROOT
    for task, module in TASK_APPS.items():
        assert importlib.import_module(module).FIT_CONFIG in SHIPPED, task


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: str(p.relative_to(APPS_ROOT)))
def test_shipped_config_builds(config: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = next(
        importlib.import_module(module)
        for module in TASK_APPS.values()
        if Path(importlib.import_module(module).__file__).parent == config.parent
    )
    raw = yaml.safe_load(config.read_text())
    cli = build_cli(app.MODEL_CLASS, app.DATA_CLASS, config, [], app.EXTRA_GROUPS)
    assert isinstance(cli.model, app.MODEL_CLASS)
    assert isinstance(cli.datamodule, app.DATA_CLASS)
    assert cli.trainer.max_steps == raw["trainer"]["max_steps"]
    for key, value in raw["model"].items():
        assert cli.model.hparams[key] == value, key


def test_unknown_config_key_is_rejected(tmp_path, monkeypatch):
    from unidit.apps.shape3d import app

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        build_cli(app.MODEL_CLASS, app.DATA_CLASS, app.FIT_CONFIG, ["--model.no_such_option", "1"], app.EXTRA_GROUPS)
