"""Shared schema pieces: a strict base and validated text types."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

# Control characters (NUL, escape sequences) and bidi overrides never belong in stored text.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


class Schema(BaseModel):
    """Base for response schemas: built from ORM objects."""

    model_config = ConfigDict(from_attributes=True)


class Input(BaseModel):
    """Base for request bodies: unknown fields are an error, not silently dropped.

    Whole numbers and yes/no fields are `StrictInt` and `StrictBool`: read leniently, `true`
    was 1, "12" was 12 and "on" was yes, a client's bug taken for a value. A page that reads
    a number from a form converts it first (`koan.web.pagekit.small_int`). Amounts of money
    stay lenient: sent as strings, they keep every digit."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def encodable(text: str) -> str:
    """`text` with lone surrogates escaped: a message quoting hostile input (a "\\ud800" sent
    as JSON) must still encode as UTF-8, or the error answer itself fails with a 500."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _has_surrogates(value: str) -> bool:
    return any(unicodedata.category(ch) == "Cs" for ch in value)


# What shows nothing on its own: format characters (zero-width space, byte order mark, joiners,
# bidi marks), spaces, line and paragraph separators, controls, and combining marks with no
# letter to sit on.
_UNSEEN_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp", "Cc", "Cs", "Mn", "Me"})
# Characters of other categories that Unicode says to draw as nothing (the Hangul fillers, the
# reserved default-ignorable ones) or that fonts draw blank (the empty Braille pattern).
_UNSEEN = re.compile("[\u115f\u1160\u2065\u2800\u3164\uffa0\ufff0-\ufff8\U000e0000-\U000e0fff]")
# Inside one line: controls (tab included), line and paragraph separators, surrogates.
_NOT_IN_A_LINE = frozenset({"Cc", "Zl", "Zp", "Cs"})


def visible(value: str) -> bool:
    """Whether `value` shows anything: a text of invisible characters alone reads as blank."""
    return any(
        unicodedata.category(ch) not in _UNSEEN_CATEGORIES and not _UNSEEN.match(ch) for ch in value
    )


def blank_refusal() -> PydanticCustomError:
    """What a text that shows nothing is told: empty, as a text of spaces alone is."""
    return PydanticCustomError(
        "string_too_short",
        "String should have at least 1 visible character: invisible ones alone show as blank",
        {"min_length": 1},
    )


def clean_line(value: str) -> str:
    """One line of text someone will see: trimmed; no line breaks, tabs, control or
    bidi-override characters; and, unless empty, something visible."""
    value = value.strip()
    for ch in value:
        if unicodedata.category(ch) in _NOT_IN_A_LINE:
            raise ValueError("must be one line of text: no line breaks, tabs or control characters")
    if _FORBIDDEN.search(value):
        raise ValueError("must not contain control characters")
    if value and not visible(value):
        raise blank_refusal()
    return value


def clean_text(value: str) -> str:
    """Multi-line text: no control characters other than tab and newlines."""
    if _FORBIDDEN.search(value) or _has_surrogates(value):
        raise ValueError("must not contain control characters")
    return value


# Names the zone database carries that are no place: "localtime" is whatever zone the server
# is set to (a learner's days would move with the server), "Factory" an unset clock.
_NOT_PLACES = frozenset({"localtime", "Factory"})


@lru_cache(maxsize=1)
def timezones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_PLACES


def check_timezone(value: str) -> str:
    if value not in timezones():
        raise ValueError("must be an IANA time zone name such as 'Europe/Paris' or 'UTC'")
    return value


# The years a date someone enters may fall in: wide enough for any course, narrow enough that
# reading it in another time zone, or adding a term to it, stays within what Python's dates hold.
EARLIEST_YEAR, LATEST_YEAR = 1970, 2200


def within_years(value: date) -> bool:
    return EARLIEST_YEAR <= value.year <= LATEST_YEAR


_WRITTEN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def written_moment(value: object) -> object:
    """A date and time written out (2026-09-01T09:00), never a number: pydantic reads one, or a
    text of digits, as seconds after 1970, so a date typed as "20260901" became 23 August 1970."""
    if isinstance(value, int | float | str) and not (
        isinstance(value, str) and _WRITTEN_DATE.match(value)
    ):
        raise PydanticCustomError(
            "datetime_parsing",
            "Input should be a date and time written out, like 2026-09-01T09:00",
        )
    return value


def check_moment(value: datetime) -> datetime:
    if not within_years(value):
        raise ValueError(f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


# One line of text someone will see, trimmed before its length is checked (so spaces alone
# are empty, `string_too_short`) and refused when it would show blank or span lines.
PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(clean_line),
]
Text = Annotated[str, AfterValidator(clean_text)]
TimeZoneName = Annotated[str, AfterValidator(check_timezone)]
# A date and time someone sets (a class's dates, an assignment's, an exam window).
Moment = Annotated[datetime, BeforeValidator(written_moment), AfterValidator(check_moment)]


# Amounts of money are kept to the millionth of a dollar (the columns' scale).
MONEY_PLACES = Decimal("0.000001")


def money_text(value: Decimal) -> str:
    """An amount as every answer shows it: plain figures to six places ("1000.000000"). Decimal
    writes one as it was read, so a budget sent as "1e3" came back as "1E+3", and one just
    saved had other places than the same one read back."""
    return format(value.quantize(MONEY_PLACES), "f")


# An amount of money in a response: a string of plain figures, never an exponent.
Money = Annotated[Decimal, PlainSerializer(money_text, return_type=str, when_used="json")]
