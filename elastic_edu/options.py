"""Command-line options generated from configuration dataclasses (elastic_edu.config, and the
bench's `elastic_edu.bench.config.BenchConfig`).

`add_dataclass_options` adds one option per dataclass field, with its type, its one-line help
(the field's ``metadata["help"]``) and its default, so a default or a help text is written once,
in the dataclass. Every option defaults to None (unset), so the dataclass's own default, or a
config file's, applies; `given` reads back the options that were set, by section, and the
caller builds its dataclasses from them directly. Flag names are the fields' names, which must
be unique across the sections of one command (`elastic_edu.config.setting_sections`). A
hand-written generator (about 60 lines) instead of a library such as tyro or jsonargparse: no
new dependency, and the options stay plain argparse. `Parser` turns argparse's mistakes into
`UserError`: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from elastic_edu.config import NOT_SETTINGS, SECTIONS


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
    """The type an option parses: Optional[X] -> X; list[X] -> (X, True)."""
    hint = typing.get_type_hints(owner)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        hint = args[0]
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], True
    return hint, False


def _shown(default) -> str:
    if default is None:
        return "none"
    return " ".join(map(str, default)) if isinstance(default, list) else str(default)


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, title: str,
                          section: str, notes: dict[str, str] | None = None,
                          skip=()) -> None:  # fmt: skip
    """One option per field of `cls` (but `skip`): --field-name (or the field's ``flag``), its
    type (a list field takes several values), its choices, its help and its default (a field's
    ``metavar`` may be None: argparse then shows the choices).

    Options default to None (unset) and are stored as ``<section>.<field>``: `given` reads them
    back; the help shows the dataclass default (or `notes`' text for it).
    """
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind, several = _field_type(f, cls)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = (notes or {}).get(f.name, _shown(default))
        text = f"{f.metadata.get('help', '')} (default: {shown})".replace("%", "%%")
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        common = {"dest": f"{section}.{f.name}", "default": None, "help": text}
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
            continue
        metavar = f.metadata.get("metavar", flag.lstrip("-").replace("-", "_").upper())
        parse, nargs = f.metadata.get("parse", kind), "+" if several else None
        group.add_argument(flag, type=parse, nargs=nargs, choices=f.metadata.get("choices"),
                           metavar=metavar, **common)  # fmt: skip


def add_config_options(parser: argparse.ArgumentParser, notes: dict[str, dict[str, str]]) -> None:
    """The options of every config section (model, interest memory, training); `notes`: help
    text for a default, by section and field."""
    titles = {"model": "model", "memory": "interest memory", "train": "training"}
    for section, cls in SECTIONS.items():
        title = f"{titles[section]} (elastic_edu.config.{cls.__name__})"
        skip = NOT_SETTINGS if section == "model" else ()
        add_dataclass_options(parser, cls, title, section, notes.get(section), skip)


def given(args: argparse.Namespace, sections=tuple(SECTIONS)) -> dict[str, dict]:
    """The options set on the command line, by section: {section: {field: value}}."""
    out = {section: {} for section in sections}
    for dest, value in vars(args).items():
        section, dot, name = dest.partition(".")
        if dot and section in out and value is not None:
            out[section][name] = value
    return out


def plain(text: str) -> str:
    """A docstring as terminal help: markdown/rst markup (**bold**, ``code``, `name`) removed."""
    import re

    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    return re.sub(r"`{1,2}([^`]+?)`{1,2}", r"\1", text)
