"""load_or_train: trains once, loads afterwards, retrains over a damaged cache."""

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from unidit.training.model_cache import cache_root, load_or_train


class Tiny(torch.nn.Module):
    def __init__(self, value: float = 0.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((2,), value))

    def save_pretrained(self, folder: Path) -> None:
        save_file(self.state_dict(), str(Path(folder) / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, folder: Path) -> "Tiny":
        model = cls()
        model.load_state_dict(load_file(str(Path(folder) / "model.safetensors")))
        return model


def test_trains_once_then_loads_and_retrains_a_damaged_cache(tmp_path: Path):
    folder = cache_root(tmp_path) / "task" / "classifier-abc"
    calls = []

    def train():
        calls.append(1)
        return Tiny(float(len(calls)))

    first = load_or_train(folder, Tiny.from_pretrained, train)
    second = load_or_train(folder, Tiny.from_pretrained, train)
    assert len(calls) == 1 and torch.equal(first.weight, second.weight)
    assert [p.name for p in folder.parent.iterdir()] == ["classifier-abc"]  # no temporary folders left

    (folder / "model.safetensors").write_bytes(b"not safetensors")
    third = load_or_train(folder, Tiny.from_pretrained, train)
    assert len(calls) == 2 and float(third.weight[0]) == 2.0
    assert float(Tiny.from_pretrained(folder).weight[0]) == 2.0


def test_cache_root_prefers_argument_then_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("UNIDIT_CACHE", str(tmp_path / "env"))
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
