"""Where the bundled data folders (`targets/`, `quant/`) are, and how a preset name or a file path finds its TOML.

A target or a recipe is named either as a bundled preset (`x86_64`, `int8-entropy`: a file in the
data folder, named without its path) or as a path to a TOML file of the same schema. Which one a
name is, and what the error says when it finds nothing, is decided here only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import InputError

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    # A wheel carries the folders inside the package; a source checkout keeps them at the repo root.
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgekit data folder '{name}' is missing from this installation")


@dataclass(frozen=True)
class PresetKind:
    """One kind of bundled preset: its data folder and what its errors say.

    Messages are str.format templates: {name} is the preset name asked for, {path} the file path,
    {names} the bundled presets, comma-separated.
    """

    folder: str
    unknown: tuple[str, str]  # (message, hint) for a name with no file in the folder
    missing: tuple[str, str]  # for a path where nothing is
    not_file: tuple[str, str]  # for a path that is something other than a file (a folder)


PRESET_KINDS: dict[str, PresetKind] = {
    "target": PresetKind(
        folder="targets",
        unknown=("unknown target '{name}'", "known targets: {names}"),
        missing=("target file not found: {path}", "check the path"),
        not_file=("target file not found: {path}", "check the path"),
    ),
    "recipe": PresetKind(
        folder="quant",
        unknown=("unknown recipe preset '{name}'", "available presets: {names}; or give the path of a .toml file"),
        missing=("recipe file not found: {path}", "check the path, or name a preset: {names}"),
        not_file=("recipe is not a file: {path}", "give the path of a recipe .toml file"),
    ),
}


def is_preset_path(spec: str | Path) -> bool:
    """True when `spec` names a file (a Path, text holding a '/', or ending in .toml), False for a preset name."""
    text = str(spec)
    return isinstance(spec, Path) or "/" in text or os.sep in text or text.endswith(".toml")


def preset_name(spec: str | Path) -> str:
    """The name a preset or file goes by: `x86_64` for a preset, the file's stem for a path."""
    return Path(str(spec)).stem if is_preset_path(spec) else str(spec)


def preset_names(kind: str) -> list[str]:
    """The bundled presets of `kind` ("target" or "recipe"), sorted."""
    return sorted(path.stem for path in data_dir(PRESET_KINDS[kind].folder).glob("*.toml"))


def resolve_preset(spec: str | Path, kind: str) -> Path:
    """The TOML file `spec` names: a bundled preset of `kind` ("target" or "recipe") or a file path.

    A path is taken as given (relative to the working directory). Raises InputError for an unknown
    preset name, a path where nothing is, or a path that is not a file.
    """
    words = PRESET_KINDS[kind]
    if is_preset_path(spec):
        path = Path(str(spec))
        if not path.exists():
            _fail(words.missing, kind, path=path)
        if not path.is_file():
            _fail(words.not_file, kind, path=path)
        return path
    path = data_dir(words.folder) / f"{spec}.toml"
    if not path.is_file():
        _fail(words.unknown, kind, name=spec)
    return path


def _fail(words: tuple[str, str], kind: str, **values) -> None:
    values["names"] = ", ".join(preset_names(kind))
    message, hint = words
    raise InputError(message.format(**values), hint.format(**values))
