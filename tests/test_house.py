"""The house rules of README.md "The house": stages are folders in pipeline order, data flows one
way, and a stage reaches an earlier one only through that stage's package (its `__init__`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgekit"
README = PACKAGE.parent / "README.md"
STAGES = ["exporter", "quantizer", "compiler", "runtime", "measure", "checker", "project", "report"]
EDGE = {"edgekit", "edgekit.cli", "edgekit.__main__"}  # the facade and the CLI may import anything
FACADE = {"export", "quantize", "compile", "check", "load", "targets"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = all_modules()


def imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, imported module, name) for every edgekit import in the file, top level or not."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, "") for alias in node.names if alias.name.split(".")[0] == "edgekit"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "edgekit" and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.append((node.lineno, submodule if submodule in MODULES else node.module, alias.name))
    return found


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def violation(importer: str, imported: str, name: str) -> str | None:
    if importer in EDGE:
        return None
    if imported == "edgekit":
        return f"imports the public facade (edgekit.{name})" if name in FACADE or not name else None
    source, target = stage_of(importer), stage_of(imported)
    if target is None:
        return None  # shared modules serve everyone
    if source is None:
        return f"is a shared module but imports the {target} stage"
    if source == target:
        return None
    if STAGES.index(target) > STAGES.index(source):
        return f"imports a later stage ({target} comes after {source})"
    if imported != f"edgekit.{target}":
        return f"reaches into the {target} stage's internals (import from edgekit.{target} itself)"
    return None


def test_every_import_runs_with_the_pipeline():
    problems = []
    for importer, path in MODULES.items():
        for line, imported, name in imports(path):
            if (why := violation(importer, imported, name)) is not None:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} {imported} {why}")
    assert problems == []


@pytest.mark.parametrize(
    ("importer", "imported", "expected"),
    [
        ("edgekit.compiler.build_artifact", "edgekit.checker.gates", "later stage"),
        ("edgekit.report.gather", "edgekit.quantizer.sensitivity_html", "internals"),
        ("edgekit.report.gather", "edgekit.quantizer", None),
        ("edgekit.metrics", "edgekit.compiler", "shared module"),
        ("edgekit.project.pipeline", "edgekit", "facade"),
        ("edgekit.cli", "edgekit.compiler.fold", None),
    ],
)
def test_the_rule_catches_what_it_should(importer, imported, expected):
    got = violation(importer, imported, "compile" if imported == "edgekit" else "x")
    assert (got is None) if expected is None else (expected in got)


def test_readme_house_names_every_folder_in_pipeline_order():
    house = README.read_text().split("## The house", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\| `(\w+)/` \|", house, flags=re.M)
    folders = [p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists() and p.name != "demo"]
    assert named == STAGES
    assert sorted(named) == sorted(folders)


def test_no_two_modules_share_a_name():
    names: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            names.setdefault(path.stem, []).append(module)
    assert {stem: found for stem, found in names.items() if len(found) > 1} == {}
