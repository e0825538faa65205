"""Command-line options generated from the configuration dataclasses (elastic_edu.config).

`add_dataclass_options` adds one option per dataclass field, with its type, its one-line help
(the field's ``metadata["help"]``) and its default, so a default or a help text is written once,
in the dataclass. A hand-written generator (about 40 lines) instead of a library such as tyro or
jsonargparse: no new dependency, and the options stay plain argparse, which the bench and the
tests share. `Parser` turns argparse's mistakes into `UserError`: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from elastic_edu.config import MemoryConfig, ModelConfig, TrainConfig

SKIP = {"model", "num_items", "memory"}


class UserError(ValueError):
    """A mistake in the command line: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are UserErrors (one line, status 2) instead of a usage dump."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message} (see --help)")


def count(text: str) -> int:
    """argparse type: a non-negative integer."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def _field_type(f: dataclasses.Field, owner: type):
    hint = typing.get_type_hints(owner)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        hint = args[0]
    return hint


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, title: str,
                          notes: dict[str, str] | None = None) -> None:  # fmt: skip
    """One option per field of `cls`: --field-name, its type, its help and its default.

    Options default to None (unset), so a model's own defaults apply; the help shows the
    dataclass default.
    """
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if f.name in SKIP:
            continue
        kind = _field_type(f, cls)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = (notes or {}).get(f.name, "none" if default is None else str(default))
        text = f"{f.metadata.get('help', '')} (default: {shown})".replace("%", "%%")
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                               help=text)  # fmt: skip
        else:
            group.add_argument(flag, type=kind, default=None, choices=f.metadata.get("choices"),
                               metavar=f.name.upper(), help=text)  # fmt: skip


def overrides(args: argparse.Namespace) -> dict:
    """The config fields set on the command line (unset ones are None and dropped later)."""
    names = {f.name for cls in (ModelConfig, MemoryConfig, TrainConfig)
             for f in dataclasses.fields(cls)} - SKIP  # fmt: skip
    return {n: getattr(args, n) for n in names if hasattr(args, n)}


def plain(text: str) -> str:
    """A docstring as terminal help: markdown/rst markup (**bold**, ``code``, `name`) removed."""
    import re

    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    return re.sub(r"`{1,2}([^`]+?)`{1,2}", r"\1", text)
