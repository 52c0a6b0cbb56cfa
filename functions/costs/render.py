"""A cost report as CSV: one line per group and month, cells safe to open in a spreadsheet.
Pure."""

from __future__ import annotations

import csv
import io

from functions.costs.schemas import CostReport

CSV_COLUMNS = ("group_by", "key", "label", "month", "currency", "amount", "estimated")


def _cell(text: str | None) -> str:
    """Spreadsheet formula injection: a text cell starting with = + - @ (or a tab/CR) is
    prefixed with an apostrophe so that it stays text (OWASP CSV injection)."""
    value = text or ""
    return "'" + value if value[:1] in {"=", "+", "-", "@", "\t", "\r"} else value


def to_csv(report: CostReport) -> str:
    """One line per group and month (pure)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for g in report.groups:
        for month, amount, estimated in zip(g.months, g.amounts, g.amounts_estimated, strict=True):
            writer.writerow(
                [
                    report.group_by,
                    _cell(g.key),
                    _cell(g.label),
                    month,
                    g.currency,
                    amount,
                    "true" if estimated else "false",
                ]
            )
    return out.getvalue()
