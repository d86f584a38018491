"""bf16 in an app config falls back to fp32 on CPUs that would only emulate it."""

from __future__ import annotations

import pytest
import torch
from unidit.apps import task_cli
from unidit.apps.t2v.app import APP as T2V_APP
from unidit.apps.task_cli import cpu_precision


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_bf16_falls_back_to_fp32_without_native_bf16(cpu_only, monkeypatch, capsys):
    monkeypatch.setattr(task_cli, "native_cpu_bf16", lambda: False)
    assert cpu_precision("bf16-mixed", "auto") == "32-true"
    assert cpu_precision("bf16-true", "cpu") == "32-true"
    assert "no native bf16" in capsys.readouterr().out
    assert cpu_precision("32-true", "auto") == "32-true"
    assert cpu_precision(32, "cpu") == 32
    assert cpu_precision("bf16-mixed", "gpu") == "bf16-mixed"  # not a CPU run: leave it to Lightning


def test_bf16_is_kept_where_the_cpu_has_it(cpu_only, monkeypatch):
    monkeypatch.setattr(task_cli, "native_cpu_bf16", lambda: True)
    assert cpu_precision("bf16-mixed", "auto") == "bf16-mixed"


def test_the_t2v_default_asks_for_bf16():
    assert "precision: bf16-mixed" in T2V_APP.config.read_text()
