"""Command-line arguments that fail as one line a person can act on.

Every expected mistake — an unknown option value, ``--steps 0``, ``--num -1``,
an ``--out`` that is a file — raises :class:`UsageError`; ``unidit`` prints it
as ``unidit: error: …`` and exits with status 2 (see :mod:`unidit.apps.cli`).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path

from docstring_parser import parse as parse_docstring


class UsageError(ValueError):
    """A command was given an option or input it cannot use; the message says which and what was expected."""


class UsageParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def output_folder(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a folder to write into: refused if it exists and is not a folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is a file; expected a folder to write into (it is created if missing)")
    return path


def input_file(path: str | Path, option: str) -> Path:
    """``path`` as a file to read: it must exist and be a file."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise UsageError(f"{option} {path}: {what}; expected a readable file")
    return path


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, defaults, title: str) -> None:
    """One ``--field`` option per field of the dataclass ``cls``, defaults from the instance ``defaults``.

    Help texts come from the class's ``Attributes:`` docstring section (as
    LightningCLI / jsonargparse read them), so the options and their config
    counterparts (``--report.steps`` …) read the same.
    """
    helps = {}
    for klass in reversed(cls.__mro__):
        if klass.__doc__:
            helps.update({p.arg_name: p.description for p in parse_docstring(klass.__doc__).params})
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        options = {"default": getattr(defaults, field.name), "help": f"{helps.get(field.name, '')} (default: %(default)s)"}
        if typing.get_origin(hint) is typing.Literal:
            options["choices"] = list(typing.get_args(hint))
        else:
            options["type"] = _scalar(hint)
        group.add_argument(f"--{field.name}", **options)


def _scalar(hint):
    """The argparse type of a field hint: ``int``, ``float``, ``str``, or an optional one (``none`` = None)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        inner = args[0]
        return lambda text: None if text.lower() in ("none", "null") else inner(text)
    return hint
