"""Atomic outputs and content hashes: nothing half-written is ever left at a user's path."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgekit.errors import ArtifactError, EdgekitError, InputError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_file(path: Path, what: str) -> Path:
    """Return `path` if it is an existing file, else raise a one-line InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}", "check the path")
    if not path.is_file():
        raise InputError(f"{what} is not a file: {path}", "give the path of a file")
    return path


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; on success it replaces `path`."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"output path exists and is not a directory: {path}", "choose another -o path")
    if path.exists() and not overwrite:
        raise InputError(f"output directory already exists: {path}", "remove it or pass --overwrite")
    created = _make_parents(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            # Swap rather than delete-then-rename so a crash never leaves no artifact at all.
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # deepest first: leave no empty folders behind a failure
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p `folder`; return the folders it created, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir()
    return missing


def read_versioned_json(path: Path, fmt: str, version: int, what: str, hint: str, error: type[EdgekitError] = ArtifactError) -> dict[str, Any]:
    """The JSON object in `path` whose "format" is `fmt` and "format_version" `version`.

    Anything else (no file, not JSON, another format or version) raises `error` naming the path,
    `what` the file should be ("an edgekit baseline") and `hint`.
    """
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{path} is missing", hint) from None
    except (ValueError, OSError) as exc:
        raise error(f"{path} is not valid JSON ({exc})", hint) from None
    if not isinstance(record, dict) or record.get("format") != fmt or record.get("format_version") != version:
        raise error(f"{path} is not {what} (format {fmt} v{version})", hint)
    return record
