"""Cells of the CSV files Koan offers for download, safe to open in a spreadsheet."""

from __future__ import annotations

# A cell starting with one of these is read as a formula (or turned into one) by spreadsheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The value as text, with a leading apostrophe where a spreadsheet would run it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
