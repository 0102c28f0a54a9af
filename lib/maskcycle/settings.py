"""Settings dataclasses (TrialConfig, curation `Settings`, SLURM options, the survey simulator's
parameters): the one type check of their fields, and their fields as command-line flags.

A field declared with `setting(default, help)` becomes a `--field-name` flag whose type, choices
and default come from the dataclass (`add_field_arguments`), so no flag restates a default;
`from_arguments` builds the dataclass back from the parsed flags and `field_flags` writes the flags
that reproduce one. `ConfigError` is the one error of a bad setting (a one-line message naming the
key or file, exit status 2 on the command line).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import types
import typing
from typing import Any, Literal, get_args, get_origin


class ConfigError(ValueError):
    """An unknown key, a value of the wrong type, or an impossible value in a trial config or other settings."""


@functools.cache
def field_hints(cls) -> dict:
    """The resolved annotations of the dataclass `cls` (field name -> type)."""
    return typing.get_type_hints(cls)


def check_field_types(obj, error=ConfigError) -> None:
    """Every field of the dataclass `obj` has its annotated type: a Literal's choices, bool, int,
    float (an int is accepted), str, or tuple[T, ...]. The one type check of every settings class
    (TrialConfig, curation Settings, SLURM options, the survey simulator); raises `error`."""
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), field_hints(type(obj))[f.name]
        why = _type_problem(value, hint)
        if why:
            raise error(f"key {f.name!r}: value {value!r} {why}")


def _type_problem(value: Any, hint: Any) -> str | None:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (types.UnionType, typing.Union):  # X | None, bool | Literal["auto"]
        problems = [_type_problem(value, h) for h in args if h is not type(None)]
        return None if value is None or None in problems else problems[0]
    if origin is Literal:
        return None if value in args else f"is not one of {', '.join(map(repr, args))}"
    if origin is tuple:
        if not isinstance(value, tuple):
            return f"has type {type(value).__name__}, expected a list"
        return next((_type_problem(v, args[0]) for v in value if _type_problem(v, args[0])), None)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return None
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if isinstance(value, hint) and not (hint is not bool and isinstance(value, bool)):
        return None
    return f"has type {type(value).__name__}, expected {getattr(hint, '__name__', hint)}"


def setting(default, help: str, **metadata):
    """A settings dataclass field with its help text (and, e.g., `flag=`): what add_field_arguments
    turns into a command-line flag."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


# --- settings on the command line -----------------------------------------------------------
def add_field_arguments(parser, cls, skip: tuple[str, ...] = (), only: list[str] | None = None,
                        dest_prefix: str = "", defaults: bool = True) -> None:
    """One `--field-name` flag per field of the settings dataclass `cls` (help from the field's
    metadata, type and choices from its annotation, default from the field unless `defaults` is
    False: then an absent flag is None, for options merged over others), so flags never restate a default."""
    for f in dataclasses.fields(cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        hint = field_hints(cls)[f.name]
        if get_origin(hint) is types.UnionType:
            hint = next(h for h in get_args(hint) if h is not type(None))
        flag = f.metadata.get("flag") if isinstance(f.metadata.get("flag"), str) else "--" + f.name.replace("_", "-")
        default = f.default if defaults else None
        kw: dict[str, Any] = {"dest": dest_prefix + f.name, "default": default}
        if hint is bool:
            kw.update(action=argparse.BooleanOptionalAction)
        elif get_origin(hint) is tuple:
            item = get_args(hint)[0]
            kw.update(nargs="+", type=str, default=list(default) if defaults else None,
                      **({"choices": get_args(item)} if get_origin(item) is Literal else {}))
        elif get_origin(hint) is Literal:
            kw.update(choices=get_args(hint), type=type(get_args(hint)[0]))
        else:
            kw.update(type=hint)
        shown = f" (default: {default!r})" if defaults else ""
        parser.add_argument(flag, help=f"{f.metadata.get('help', '')}{shown}".strip(), **kw)


def at_least(low: int):
    """An argparse type: an int >= low (`--batch-size 0` is a one-line usage error, not a traceback)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


def from_arguments(cls, args, **extra):
    """An instance of the settings dataclass `cls` from parsed `add_field_arguments` flags."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**{**values, **extra})


def field_flags(obj) -> list[str]:
    """The inverse of add_field_arguments: the flags that reproduce the settings `obj` (only the
    fields that differ from their defaults), for a subprocess command line."""
    flags: list[str] = []
    for f in dataclasses.fields(obj):
        value, flag = getattr(obj, f.name), "--" + f.name.replace("_", "-")
        if value == f.default:
            continue
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            flags += [flag, *map(str, value)]
        else:
            flags += [flag, str(value)]
    return flags
