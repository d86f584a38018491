"""When a run compiles its backbone blocks: ``compile_blocks`` true / false / auto."""

import pytest
import torch
from unidit.training.block_compilation import AUTO_MIN_STEPS, compile_decision, cxx_compiler
from unidit.training.trained_task import TrainedTask


def test_auto_compiles_long_cpu_runs_with_a_compiler_only(monkeypatch):
    monkeypatch.setattr("unidit.training.block_compilation.cxx_compiler", lambda: "/usr/bin/g++")
    assert compile_decision("auto", AUTO_MIN_STEPS, "cpu")[0]
    short, why = compile_decision("auto", AUTO_MIN_STEPS - 1, "cpu")
    assert not short and "do not repay" in why  # tests and smoke runs stay eager
    assert not compile_decision("auto", None, "cpu")[0]  # no max_steps: no way to tell it pays
    assert not compile_decision("auto", 10 * AUTO_MIN_STEPS, "cuda")[0]  # GPUs: ask with true
    monkeypatch.setattr("unidit.training.block_compilation.cxx_compiler", lambda: None)
    wanted, why = compile_decision("auto", 10 * AUTO_MIN_STEPS, "cpu")
    assert not wanted and "no C++ compiler" in why


def test_true_and_false_are_obeyed_and_other_values_fail():
    assert compile_decision(True, 1, "cpu")[0] and compile_decision(True, None, "cuda")[0]
    assert not compile_decision(False, 10 * AUTO_MIN_STEPS, "cpu")[0]
    with pytest.raises(ValueError, match="expected true, false or 'auto'"):
        compile_decision("always", 10, "cpu")
    with pytest.raises(ValueError, match="compile_blocks"):
        TrainedTask(compile_blocks="yes")


def test_compiler_lookup_follows_cxx(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    assert cxx_compiler() is None
    fake = tmp_path / "my-g++"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    assert cxx_compiler() == str(fake)


class _Backbone(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2)])


class _Task(TrainedTask):
    def __init__(self, **options):
        super().__init__(**options)
        self.denoiser = torch.nn.Module()
        self.denoiser.backbone = _Backbone()


@pytest.mark.parametrize(("dynamic", "expected"), [(True, True), (False, None)])
def test_compile_dynamic_compiles_for_every_length_from_the_first_call(monkeypatch, dynamic, expected):
    calls = []
    monkeypatch.setattr("unidit.training.trained_task.compile_training_blocks",
                        lambda backbone, **options: calls.append(options) or len(backbone.blocks))
    _Task(compile_blocks=True, compile_dynamic=dynamic)._compile_blocks_if_asked()
    assert calls == [{"dynamic": expected}]  # None: torch's default (one shape, then dynamic on a change)


def test_a_denoiser_without_backbone_blocks_trains_eager(capsys):
    task = _Task(compile_blocks=True)
    task.denoiser.backbone = torch.nn.Linear(2, 2)  # no `blocks` ModuleList
    task._compile_blocks_if_asked()
    assert "training eager" in capsys.readouterr().out
