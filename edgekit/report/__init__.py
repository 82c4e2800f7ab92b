"""`edgekit report BUILD`: one self-contained HTML page about a build folder that `edgekit pipeline` wrote.

collect.py reads the build's records and measures its artifacts on this machine into one dict;
page.py renders that dict. From Python:

    from edgekit.report import write_report
    write_report("build/digits")          # -> build/digits/report.html
"""

from __future__ import annotations

from pathlib import Path

from edgekit.files import atomic_file
from edgekit.report.gather import collect_report
from edgekit.report.page import report_html

REPORT_HTML = "report.html"

__all__ = ["REPORT_HTML", "collect_report", "report_html", "write_report"]


def write_report(build: Path | str, output: Path | str | None = None, *, runs: int = 200, profile_runs: int = 20, threads: int | None = None) -> Path:
    """Write the report of the build in `build` to `output` (default BUILD/report.html), atomically; return its path.

    `runs` inferences make the latency histogram, `profile_runs` the per-kernel medians. Raises
    InputError for a missing or incomplete build (no build.json, no gate results) and
    ArtifactError for one whose recorded files are missing or changed; nothing is written then.
    """
    data = collect_report(build, runs=runs, profile_runs=profile_runs, threads=threads)
    path = Path(output) if output is not None else Path(build) / REPORT_HTML
    with atomic_file(path) as tmp:
        tmp.write_text(report_html(data), encoding="utf-8")
    return path
