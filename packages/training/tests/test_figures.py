"""Shared report-figure helpers: caption wrapping and atomic PNG saving."""

from __future__ import annotations

import pytest
from unidit.training.figures import save_figure_png, wrap_words

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FakeFigure:
    """Stands in for a matplotlib figure (this package does not depend on matplotlib): records the save."""

    def __init__(self, fail: bool = False):
        self.fail, self.calls = fail, []

    def savefig(self, path, format):  # noqa: A002 (matplotlib's keyword)
        self.calls.append(format)
        if self.fail:
            raise OSError("disk full")
        with open(path, "wb") as f:
            f.write(PNG_MAGIC + b"body")


def test_wrap_words_breaks_at_spaces_within_the_width():
    text = "a red circle travels from the left to the right"
    wrapped = wrap_words(text, 16)
    assert wrapped.split() == text.split()
    assert all(len(line) <= 16 for line in wrapped.splitlines())
    assert wrap_words("unbreakablewordlongerthanwidth ok", 8).splitlines() == ["unbreakablewordlongerthanwidth", "ok"]
    assert wrap_words("   ", 10) == ""


def test_save_figure_png_writes_a_png_and_leaves_no_temporary(tmp_path):
    figure = FakeFigure()
    path = save_figure_png(figure, tmp_path / "sub" / "plot.png")
    assert figure.calls == ["png"]
    assert path.read_bytes() == PNG_MAGIC + b"body"
    assert [p.name for p in path.parent.iterdir()] == ["plot.png"]


def test_a_failed_save_keeps_the_old_file(tmp_path):
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")

    with pytest.raises(OSError, match="disk full"):
        save_figure_png(FakeFigure(fail=True), target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]
