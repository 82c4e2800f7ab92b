"""Reading edgekit's TOML files (recipes, projects) with one-line errors that name the file and the key."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from edgekit.errors import InputError


def parse_toml(path: Path, data: bytes, hint: str) -> dict:
    """The parsed table of `data` (the bytes of `path`); InputError for non-UTF-8 text or bad TOML."""
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})", "save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: malformed TOML: {exc}", f"fix the syntax; {hint}") from None


def toml_key(name: str) -> str:
    """`name` as written in a TOML key: bare when it can be, else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name, ensure_ascii=False)


class TomlReader:
    """Checks on a parsed file; every error names the file (as `label`) and the full key."""

    def __init__(self, label: str, hint: str) -> None:
        self.label = label
        self.hint = hint

    def fail(self, problem: str, hint: str) -> None:
        raise InputError(f"{self.label}: {problem}", hint)

    def keys(self, table: dict, prefix: str, allowed: tuple[str, ...], note: str = "") -> None:
        """Fail on the first key of `table` not in `allowed`; `note` is added when it names a table."""
        where = f"in [{prefix}]" if prefix else "at the top level"
        for key, value in table.items():
            if key not in allowed:
                full = f"{prefix}.{toml_key(key)}" if prefix else toml_key(key)
                extra = note if isinstance(value, dict) else ""
                self.fail(f"unknown key '{full}'", f"allowed keys {where}: {', '.join(allowed)}{extra}")

    def table(self, raw: dict, name: str) -> dict:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            self.fail(f"key '{name}' must be a table", f"write it as [{name}]; {self.hint}")
        return value
