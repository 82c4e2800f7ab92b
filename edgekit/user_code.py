"""A user's own Python function named as `file.py:function`: a model factory, an evaluation, a gate metric.

The three callers word their errors differently (an option, a project key), so each passes its
own `UserCodeErrors`; the loading itself is done here only.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import InputError, first_line

_PLACEHOLDER = re.compile(r"\{(path|given|name|error)\}")


@dataclass(frozen=True)
class UserCodeErrors:
    """(message, hint) pairs for what can go wrong, with {path} (the file as found), {given} (its
    path as the user wrote it), {name} (the function) and {error} (the import error) filled in.

    The placeholders are replaced literally, so other braces in the text (a TOML key) stay as they are.
    """

    not_found: tuple[str, str]
    import_failed: tuple[str, str]
    no_function: tuple[str, str]


def split_function_spec(spec: str) -> tuple[str, str] | None:
    """(file path, function name) for `file.py:function`, None for anything else."""
    path_text, sep, name = spec.rpartition(":")
    if not (sep and name and path_text.endswith(".py")):
        return None
    return path_text, name


def load_user_function(spec: str, root: Path | None, what: str, errors: UserCodeErrors) -> Callable:
    """Import the file of `spec` (`file.py:function`) and return the function.

    root: the folder a relative path is relative to (None: the working directory). what: a word for
    the module's name (`model`, `eval`, `metric`). The file may import its neighbours: its folder is
    on sys.path while it runs. Raises InputError (worded by `errors`) for a missing file, a file
    that fails to import, or a name that is not a function in it.
    """
    parts = split_function_spec(spec)
    if parts is None:
        raise ValueError(f"{spec!r} is not file.py:function")  # callers check the form with their own words
    given, name = parts
    path = Path(given) if root is None else Path(os.path.normpath(root / given))
    values = {"path": str(path), "given": given, "name": name}
    if not path.is_file():
        _fail(errors.not_found, values)
    module_spec = importlib.util.spec_from_file_location(f"edgekit_user_{what}_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file may raise anything; --debug shows its traceback
        _fail(errors.import_failed, values | {"error": f"{type(exc).__name__}: {first_line(exc)}"}, cause=exc)
    finally:
        sys.path.pop(0)
    function = getattr(module, name, None)
    if not callable(function):
        _fail(errors.no_function, values)
    return function


def _fail(words: tuple[str, str], values: dict[str, str], cause: BaseException | None = None) -> None:
    message, hint = (_fill(text, values) for text in words)
    raise InputError(message, hint) from cause


def _fill(text: str, values: dict[str, str]) -> str:
    # One pass, so a value that itself holds "{name}" (a path, an error) is left alone.
    return _PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), text)
