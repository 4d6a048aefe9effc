"""What the claims reports in analysis/ share: a verdict table (claim -> measured ->
verdict), the one template of a section (heading, prose, tables, figures, the claims it
measures), and the HTML page (olah2014.py, naitzat2020.py)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Claim:
    """A claim and what was measured of it: one row of the verdict table.

    ``ok``: True (agrees), False (DISAGREES), None (not measured: no data), ``"info"``
    (no sharp claim, reported) or ``"inconclusive"`` (measured, but the data cannot tell)."""

    claim: str  # the claim, in the words of the paper (or the theory after it)
    predicts: str  # what the paper says we should see
    measured: str  # what we computed
    ok: bool | None | str

    @classmethod
    def missing(cls, claim: str) -> Claim:
        """The row of a claim whose sweep was not run."""
        return cls(claim, "", "no results", None)


@dataclass(frozen=True)
class Figure:
    """A chart for a section's body, rendered to ``fig/<name>.png`` under ``caption``."""

    chart: Any
    name: str
    caption: str


class Report:
    """A claims report: prose, tables and figures, and one verdict row per claim.

    A script writes it one :meth:`section` at a time (``text``, ``table``, ``figure`` and
    ``verdict`` are the parts a section is made of); ``write`` puts ``<stem>.md`` and
    ``<stem>.html`` into ``out`` (figures in ``out/fig``), the verdict table first.
    """

    def __init__(self, out: str, stem: str, predicts: str = "theory predicts"):
        self.out, self.stem, self.predicts, self.md, self.rows = out, stem, predicts, [], []
        os.makedirs(os.path.join(out, "fig"), exist_ok=True)

    def text(self, s: str = "") -> None:
        self.md.append(s)

    def table(self, df) -> None:
        self.md.append(md_table(df))
        self.md.append("")

    def figure(self, chart, name: str, caption: str) -> None:
        """Render ``chart`` to ``out/fig/<name>.png`` under ``caption``. A chart that fails to
        render raises (the script exits non-zero): a report missing a figure is not written."""
        from sweepnet.views import charts

        path = os.path.join(self.out, "fig", name + ".png")
        try:
            charts.save(chart, path)
        except Exception as e:
            raise RuntimeError(f"figure {name!r} failed to render: {type(e).__name__}: {e}") from e
        self.md.append(f"![{caption}](fig/{name}.png)\n\n*{caption}*\n")

    def section(
        self,
        title: str | None,
        sweep: str = "",
        claims: Iterable[Claim] = (),
        body: Iterable[str | pd.DataFrame | Figure | None] = (),
        level: int = 2,
    ) -> None:
        """One section, the template every part of a claims report follows: a heading
        (``level`` hashes; none where ``title`` is None), then ``body`` in order (a str is a
        paragraph, a DataFrame a table, a :class:`Figure` a figure, None nothing), and one row
        of the verdict table for each of ``claims``, measured on sweep ``sweep``."""
        if title is not None:
            self.text(f"{'#' * level} {title}\n")
        for part in body:
            if part is None:
                continue
            if isinstance(part, str):
                self.text(part)
            elif isinstance(part, Figure):
                self.figure(part.chart, part.name, part.caption)
            else:
                self.table(part)
        for c in claims:
            self.verdict(c.claim, sweep, c.predicts, c.measured, c.ok)

    def verdict(self, claim, sweep, predicts, measured, ok) -> None:
        verdict = {
            True: "agrees",
            False: "DISAGREES",
            None: "not measured",
            "info": "no sharp claim (reported)",
            "inconclusive": "inconclusive",
        }[ok]
        self.rows.append(
            {
                "claim": claim,
                "sweep": sweep,
                self.predicts: predicts,
                "measured": measured,
                "verdict": verdict,
            }
        )

    def write(self, title: str) -> None:
        table = md_table(pd.DataFrame(self.rows)) if self.rows else ""
        body = "\n".join(self.md)
        md = f"# {title}\n\n## Verdicts\n\n{table}\n\n{body}\n"
        with open(os.path.join(self.out, f"{self.stem}.md"), "w") as f:
            f.write(md)
        with open(os.path.join(self.out, f"{self.stem}.html"), "w") as f:
            f.write(_html(title, md))


def if_any(n, ok):
    """A verdict's ``ok``, or None ("not measured") where it rests on no networks (``n == 0``):
    no data neither agrees nor disagrees with a claim."""
    return ok if n else None


def shown(path: str) -> str:
    """``path`` relative to the repository where it is inside it, else as it is."""
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def md_table(df) -> str:
    """A GitHub-flavoured markdown table of ``df`` (floats to 4 significant digits)."""

    def cell(v):
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.4g}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _html(title: str, md: str) -> str:
    try:
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark").enable("table").render(md)
    except ImportError:  # markdown-it-py is optional: fall back to preformatted text
        import html

        body = f"<pre>{html.escape(md)}</pre>"
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
        "vertical-align:top}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body>{body}</body></html>"
    )


__all__ = ["Claim", "Figure", "Report", "if_any", "md_table", "shown"]
