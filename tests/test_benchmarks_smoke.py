"""Smoke test of the peer benchmarks: `benchmarks/run.py --quick` writes the expected tables."""

import importlib.util
import os
import re
import sys
from pathlib import Path

from forked import Forked


ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?( \([+-]?\d+(\.\d+)?–[+-]?\d+(\.\d+)?\))?$")

EXPECTED = {
    "Backbone training step (forward + backward)": (
        ["ours", "peer", "precision", "mode", "latent tokens", "tokens ours", "tokens peer", "params ours",
         "params peer", "param diff %", "ours s/step", "peer s/step", "speed-up", "peak MiB ours", "peak MiB peer"],
        4, 4,  # 2 architectures x (fp32, bf16)
    ),
    "Achieved FLOP/s": (["model", "precision", "mode", "latent tokens", "GFLOP/step", "GFLOP/s",
                         "matmul GFLOP/s", "fraction of matmul", "fraction of best matmul"], 8, 3),
    "Mixed-size batches": (["layout", "slots computed", "real tokens", "s/step", "real tokens/s", "vs padded",
                            "peak MiB"], 4, 1),
    "Sampling": (["ours", "cache interval", "network calls computed", "peer", "ours s/sample", "peer s/sample",
                  "speed-up", "peak MiB ours", "peak MiB peer"], 2, 4),
    "Tokenizers (VAE encode / decode)": (
        ["ours", "peer", "stage", "input", "latent ours", "latent peer", "params ours", "params peer",
         "ours s/call", "peer s/call", "ours units/s", "speed-up", "peak MiB ours", "peak MiB peer"],
        8, 6,  # (audio, video, longer video, longer video streamed) x (encode, decode)
    ),
}


def tables(markdown: str) -> dict[str, list[list[str]]]:
    """Section title -> first table's rows (header first), cells stripped."""
    out, section, rows = {}, None, []
    for line in markdown.splitlines() + [""]:
        if line.startswith("## "):
            section, rows = line[3:].strip(), []
        elif line.startswith("|") and section is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                rows.append(cells)
        elif rows and section is not None and section not in out:
            out[section] = rows
    return out


def test_quick_benchmark_writes_tables(tmp_path):
    import diffusers  # noqa: F401  (the bench group is a default group: CI has it)
    out = tmp_path / "BENCH.md"

    def benchmark() -> int:  # `python benchmarks/run.py --quick ...` in a forked process (its settings stay there)
        os.chdir(ROOT)
        sys.path.insert(0, str(ROOT / "benchmarks"))  # as running the script puts its folder first
        spec = importlib.util.spec_from_file_location("benchmarks_run", ROOT / "benchmarks" / "run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        # one thread: the suite's other xdist worker has the second core (two threads here would spin-wait)
        return module.main(["--quick", "--threads", "1", "--out", str(out)])

    status, log = Forked(benchmark, tmp_path / "run.log").wait(timeout=300)
    assert status == 0, log[-4000:]
    text = out.read_text()
    assert "torch " in text and "diffusers " in text and "benchmarks/run.py --quick" in text
    found = tables(text)
    for section, (header, n_rows, n_labels) in EXPECTED.items():
        assert section in found, f"missing section {section!r}"
        rows = found[section]
        assert rows[0] == header
        assert len(rows) - 1 == n_rows
        for row in rows[1:]:
            assert len(row) == len(header)
            for cell in row[n_labels:]:
                assert NUMBER.match(cell), f"{section}: non-numeric cell {cell!r} in {row}"
    assert sum("streamed" in row[0] for row in found["Tokenizers (VAE encode / decode)"][1:]) == 2
