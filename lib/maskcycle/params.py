"""Params files: reading a YAML file of settings (with its `base:` file under it) and `key=value`
overrides. What the settings mean and which are valid is TrialConfig's business (config.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from maskcycle.settings import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice is an error (YAML itself keeps the last one). Merge
    keys (`<<: *defaults`) work as in safe_load: a key written beside one overrides the merged value."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (line {key_node.start_mark.line + 1})", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


BASE_KEY = "base"  # a params file's `base: other.yaml` (beside it): its settings, then this file's over them


def read_settings_yaml(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A params file's mapping of settings, over those of its `base:` file when it names one (so a
    study's variant states only what it changes); ConfigError naming the file when it cannot be
    read, is not UTF-8 or YAML, repeats a key, is empty (which would silently mean a full-size,
    200-epoch run with every default), or its bases form a loop."""
    values = _read_one_settings_file(Path(path))
    base = values.pop(BASE_KEY, None)
    if base is None:
        return values
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: key 'base': value {base!r} is not a file name (the params file this one builds on)")
    base_path = Path(path).parent / base
    if base_path.resolve() in _seen or base_path.resolve() == Path(path).resolve():
        raise ConfigError(f"{path}: key 'base': {base!r} leads back to itself")
    return {**read_settings_yaml(base_path, (*_seen, Path(path).resolve())), **values}


def _read_one_settings_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                          "save it as UTF-8") from None
    try:
        values = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if values is None:
        raise ConfigError(f"{path}: holds no settings; an empty params file would train every default "
                          "(200 epochs at 256 px): write the trial's settings, e.g. `n_epochs: 1`")
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at top level")
    return values


def parse_overrides(overrides: dict[str, Any] | list[str] | str | None) -> dict[str, Any]:
    """`["lr=0.001", "norm=batch"]` (or the string "lr=0.001 norm=batch") -> {"lr": 0.001, "norm":
    "batch"} (values parsed as YAML)."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    if isinstance(overrides, str):
        overrides = overrides.split()
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out
