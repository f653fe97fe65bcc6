"""What the class pages share: the viewer's membership, the page frame, form fields."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from pydantic import ValidationError

from koan.classes import service as classes
from koan.classes.service import Membership
from koan.common.download import attachment
from koan.common.schemas import EARLIEST_YEAR, LATEST_YEAR
from koan.errors import KoanError
from koan.models import User
from koan.resources import Resources
from koan.web.pagekit import (
    LANGUAGE_NAMES,
    WebSession,
    field_errors,
    parse_uuid,
    render,
)

STATUS_TEXT = {
    "passed": "Passed",
    "late": "Passed late",
    "attempted": "Attempted",
    "not_started": "Not started",
}
ROLE_TEXT = {"instructor": "Instructor", "ta": "TA", "learner": "Learner"}
STRICTNESS_TEXT = {
    "socratic": "Socratic: questions only, never code",
    "hints": "Hints: guiding hints and small fragments",
    "open": "Open: explains freely, still no full solution",
}
REASON_TEXT = {
    "failing": "Failing repeatedly",
    "ladder_used_up": "Used every hint",
    "inactive": "Inactive",
}
ROSTER_COLUMNS = (
    ("name", "Learner"),
    ("completed", "Completed"),
    ("attempts", "Attempts"),
    ("hints_used", "Hints"),
    ("tutor_messages", "Tutor messages"),
    ("assignments_done", "Assignments done"),
    ("last_active", "Last active"),
    ("streak", "Streak"),
)
SUBMISSIONS_SHOWN = 10
LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # an <input type="datetime-local"> value

ClassId = str


def common_context(user: User, **extra: Any) -> dict[str, Any]:
    return {
        "status_text": STATUS_TEXT,
        "role_text": ROLE_TEXT,
        "languages": LANGUAGE_NAMES,
        "tz": user.timezone,
        **extra,
    }


async def membership(
    session: WebSession, user: User, class_id: str, *, staff: bool = False,
    instructor: bool = False,
) -> Membership:  # fmt: skip
    return await classes.member_of(
        session, user, parse_uuid(class_id), staff=staff or instructor, instructor=instructor
    )


async def class_context(
    session: WebSession, res: Resources, member: Membership, user: User, tab: str, **extra: Any
) -> dict[str, Any]:
    """What every staff page shows around its own part: the class and its tabs."""
    room = await classes.describe(session, res, member.room, member.role, counts=False)
    return common_context(user, room=room, member=member, tab=tab, **extra)


def blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


BUDGETS = ("learner_daily_budget_usd", "class_daily_cap_usd")


# An amount as people write one: ASCII digits, a point, one dollar sign before them (Decimal
# also reads "1_000", "1e3", "١" and "NaN", and "$" alone was read as blank: no limit at all).
_AMOUNT = re.compile(r"([-+]?)\s*\$?\s*(\d+(?:\.\d*)?|\.\d+)")


def money(value: str) -> Decimal | None:
    """A budget field: blank is no limit. Raises ValueError for what is not an amount."""
    text = value.strip()
    if not text:
        return None
    amount = _AMOUNT.fullmatch(text) if text.isascii() else None
    if amount is None:
        raise ValueError(text)
    return Decimal(amount.group(1) + amount.group(2))


def csv_download(content: str, filename: str) -> Response:
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": attachment(filename)},
    )


def class_fields(values: dict[str, str]) -> dict[str, Any]:
    """A class's name, time zone and dates as the schemas take them."""
    ends_on = blank(values["ends_on"])
    return {
        "name": values["name"].strip(),
        "timezone": values["timezone"] or "UTC",
        "starts_at": blank(values["starts_on"]),
        # The end date is a whole day: the class runs until its last minute.
        "ends_at": f"{ends_on}T23:59" if ends_on else None,
    }


def refused(exc: KoanError, *, dates: str, fields: dict[str, str] | None = None) -> dict[str, str]:
    """A form's errors for what the classes service refused: a skipped wall time beside its
    field (`fields` renames the service's names to the form's), dates in the wrong order
    beside `dates`, anything else above the form."""
    if isinstance(exc, classes.NonexistentTime):
        return {(fields or {}).get(exc.field, exc.field): exc.reason}
    return {dates if exc.code == "InvalidDates" else "form": exc.detail}


# A class's dates: the form's fields (days) and the service's names (times).
CLASS_DATE_FIELDS = {"starts_at": "starts_on", "ends_at": "ends_on"}


def date_errors(exc: ValidationError) -> dict[str, str]:
    errors = {CLASS_DATE_FIELDS.get(k, k): v for k, v in field_errors(exc).items()}
    for name in ("starts_on", "ends_on"):
        if name in errors:
            errors[name] = (
                f"Enter a date between the years {EARLIEST_YEAR} and {LATEST_YEAR}, like "
                "2026-09-01, or leave it empty."
            )
    return errors


def confirm_page(
    request: Request, user: User, member: Membership, *, title: str, text: str, action: str,
    button: str, back: str,
) -> Response:  # fmt: skip
    """Ask before something that cannot be undone from the page."""
    ctx = common_context(user, title=title, text=text, action=action, button=button, back=back,
                         room=member.room)  # fmt: skip
    return render(request, "classes/confirm.html", ctx)
