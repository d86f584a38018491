"""Every YAML config shipped with an app parses and builds its model, data and trainer."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from unidit.apps.cli import APPS, load_app
from unidit.apps.joint.app import JointApp
from unidit.apps.task_app import TaskApp
from unidit.apps.task_cli import build_cli

APPS_ROOT = Path(importlib.import_module("unidit.apps").__path__[0])
SHIPPED = sorted(APPS_ROOT.rglob("*.yaml"))


def parts(app) -> tuple[type | None, type | None, Path, dict]:
    """(model class, data class, fit YAML, extra config groups) of an app.

    A TaskApp, the joint app and the Lightning tokenizer apps name all four; an app whose
    ``fit`` is a plain config (text-latent: no Lightning trainer) has no model/data class.
    """
    if isinstance(app, TaskApp):
        return app.task_class, app.data_class, app.config, {"report": app.report_class, **app.extra_groups}
    if isinstance(app, JointApp):
        return app.task_class, app.data_class, app.config, app.extra_groups
    if hasattr(app, "MODEL_CLASS"):
        return app.MODEL_CLASS, app.DATA_CLASS, app.FIT_CONFIG, app.EXTRA_GROUPS
    return None, None, app.FIT_CONFIG, {}


def test_every_app_ships_a_config():
    assert SHIPPED, APPS_ROOT
    for name in APPS:
        assert parts(load_app(name))[2] in SHIPPED, name
    owned = {parts(load_app(name))[2] for name in APPS}
    assert not set(SHIPPED) - owned, f"YAMLs no app loads: {sorted(set(SHIPPED) - owned)}"


def lightning_configs() -> list[Path]:
    """The shipped YAMLs that configure a LightningCLI (all but plain-config apps such as text-latent)."""
    return sorted(parts(load_app(n))[2] for n in APPS if parts(load_app(n))[0] is not None)


@pytest.mark.parametrize("config", lightning_configs(), ids=lambda p: str(p.relative_to(APPS_ROOT)))
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


def test_plain_config_parses(tmp_path, monkeypatch):
    """text-latent's fit.yaml (a dataclass config, no Lightning trainer) parses into its dataclass unchanged."""
    from unidit.apps.text_latent.app import FIT_CONFIG, TextLatentFit, parse_fit

    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load(FIT_CONFIG.read_text())
    config = parse_fit([])
    assert isinstance(config, TextLatentFit)
    for key, value in raw.items():
        got = getattr(config, key)
        assert (vars(got) if key == "training" else got) == value, key
    assert parse_fit(["--training.steps", "7"]).training.steps == 7
