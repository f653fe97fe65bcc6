"""The activity heat-map: a server-rendered SVG of completions per day (no script needed)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from markupsafe import Markup, escape

CELL = 13
GAP = 3
LEFT = 30
TOP = 18
# Light to dark; the lightest (no activity) still has a 3:1 border against the page.
SHADES = ("#eef1f5", "#a7d8b8", "#5bb07e", "#2e8754", "#17562f")
WEEKDAY_LABELS = {0: "Mon", 2: "Wed", 4: "Fri"}
# The page shows a year on a wide screen, a quarter on a phone.
YEAR_WEEKS = 52
QUARTER_WEEKS = 13
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True)
class Day:
    day: date
    completed: int
    attempts: int


def shade(completed: int, attempts: int) -> int:
    """0 (nothing) to 4 (three or more completions); attempts alone show the lightest green."""
    if completed <= 0:
        return 1 if attempts > 0 else 0
    return min(4, completed + 1)


def first_day(today: date, weeks: int) -> date:
    """The Monday the map of `weeks` weeks ending in today's week starts on."""
    return today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)


def heatmap_svg(
    days: Iterable[Day], *, today: date, weeks: int = 13, name: str = "heatmap"
) -> Markup:
    """Columns are weeks (oldest left), rows are weekdays Monday to Sunday; `name` is the
    SVG's extra class and the prefix of its ids (a page may hold more than one map)."""
    by_day = {d.day: d for d in days}
    start = first_day(today, weeks)
    width = LEFT + weeks * (CELL + GAP)
    height = TOP + 7 * (CELL + GAP)
    active = sum(1 for d in by_day.values() if d.completed > 0 and start <= d.day <= today)
    total = sum(d.completed for d in by_day.values() if start <= d.day <= today)
    summary = (
        f"{total} exercise{'s' if total != 1 else ''} completed on {active} "
        f"day{'s' if active != 1 else ''} in the last {weeks} weeks"
    )
    parts = [
        f'<svg class="heatmap {escape(name)}" role="img" aria-labelledby="{escape(name)}-title" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg" data-weeks="{weeks}">',
        f'<title id="{escape(name)}-title">{escape(summary)}</title>',
    ]
    for row, label in WEEKDAY_LABELS.items():
        y = TOP + row * (CELL + GAP) + CELL - 2
        parts.append(f'<text x="0" y="{y}" class="hm-label">{label}</text>')
    last_month = None
    last_label = -3
    for week in range(weeks):
        monday = start + timedelta(weeks=week)
        # A month's name where its first week starts, unless it would overlap the previous one.
        if monday.month != last_month and week - last_label >= 3:
            last_month, last_label = monday.month, week
            x = LEFT + week * (CELL + GAP)
            parts.append(f'<text x="{x}" y="11" class="hm-label">{MONTHS[monday.month - 1]}</text>')
        for row in range(7):
            day = monday + timedelta(days=row)
            if day > today:
                continue
            found = by_day.get(day)
            completed = found.completed if found else 0
            attempts = found.attempts if found else 0
            x = LEFT + week * (CELL + GAP)
            y = TOP + row * (CELL + GAP)
            label = (
                f"{day.isoformat()}: {completed} completed, {attempts} attempt"
                f"{'s' if attempts != 1 else ''}"
            )
            parts.append(
                f'<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" rx="2" '
                f'fill="{SHADES[shade(completed, attempts)]}" class="hm-cell" '
                f'data-date="{day.isoformat()}" data-count="{completed}">'
                f"<title>{escape(label)}</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))
