"""A cost report as CSV: one line per group and month, cells safe to open in a spreadsheet.
Pure."""

from __future__ import annotations

import csv
import io
import re

from functions.costs.schemas import CostReport

CSV_COLUMNS = ("group_by", "key", "label", "month", "currency", "amount", "estimated")


# Text a spreadsheet may run as a formula (OWASP "CSV Injection"): a cell starting with = + - @,
# or with a tab, CR or LF; Excel and LibreOffice also skip leading spaces before = + - @, and
# some locales use ; as the separator (a ; then starts a new cell) or read the fullwidth forms
# (U+FF1D etc.) as the ASCII ones. `\s` covers Unicode spaces (U+3000 included).
_FORMULA_START = re.compile(r"\s*[=+\-@;\uff1d\uff0b\uff0d\uff20\uff1b]|[\t\r\n]")


def _cell(text: str | None) -> str:
    """A text cell that stays text: one that could start a formula is prefixed with an
    apostrophe (the csv writer then quotes it when it holds a separator, quote or newline)."""
    value = text or ""
    return "'" + value if _FORMULA_START.match(value) else value


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
