"""The sensitivity report as one self-contained HTML page (placeholder until the plot lands)."""

from __future__ import annotations

import html


def sensitivity_html(report: dict) -> str:
    rows = "".join(f"<tr><td>{r['rank']}</td><td>{html.escape(r['node'])}</td><td>{r['op_type']}</td><td>{r['sqnr_db']}</td></tr>" for r in report["layers"])
    return f"<!doctype html><html><body><table>{rows}</table></body></html>\n"
