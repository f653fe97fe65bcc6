"""Cursor paging for every list route: one opaque codec, one error for a cursor that is not ours.

A cursor is the sort key of the last item of a page, as a base64url JSON array. Decoding checks
every value against the kind the page expects, so a forged or stale cursor is a 400 `BadCursor`,
never a database error: numbers stay within a 32-bit column, times must carry a time zone.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, tuple_

from koan.errors import BadRequest

T = TypeVar("T")
K = TypeVar("K")

CursorValue = int | str | datetime | date | uuid.UUID
# The widest integer a cursor may carry: the smallest integer column any page sorts on.
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
# The longest cursor, for the codec and for every route's `cursor` parameter alike: the
# longest sort key (an exercise's title, 200 letters of up to four bytes each, and its slug)
# encodes to about 1,200 characters, so a cursor the app hands out is one it takes back.
MAX_CURSOR_CHARS = 2048


class BadCursor(BadRequest):
    def __init__(self) -> None:
        super().__init__("The cursor is not valid; start again without it.", code="BadCursor")


def _dump(value: CursorValue) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a cursor time needs a time zone")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date | uuid.UUID):
        return value.isoformat() if isinstance(value, date) else str(value)
    return value


def encode_cursor(*values: CursorValue) -> str:
    """The opaque cursor for a page that continues after an item with this sort key."""
    # UTF-8 rather than \\u escapes: a letter of Cyrillic or Chinese takes two or three bytes
    # instead of six. surrogatepass: a text holding a lone surrogate still makes a cursor (that
    # decode_cursor refuses), not a failed page.
    payload = json.dumps([_dump(v) for v in values], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(payload.encode("utf-8", "surrogatepass")).decode()


def _load(raw: Any, kind: type) -> Any:
    if kind is int:
        if type(raw) is not int or not _INT_MIN <= raw <= _INT_MAX:
            raise ValueError("not a cursor integer")
        return raw
    if not isinstance(raw, str):
        raise ValueError("not a cursor string")
    if kind is str:
        # What a database can store: no lone surrogate (not UTF-8), no NUL (not in PostgreSQL).
        raw.encode("utf-8")
        if "\x00" in raw:
            raise ValueError("a cursor string holds a NUL")
        return raw
    if kind is datetime:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise ValueError("a cursor time needs a time zone")
        return moment.astimezone(UTC)
    if kind is date:
        return date.fromisoformat(raw)
    if kind is uuid.UUID:
        return uuid.UUID(raw)
    raise TypeError(f"cursors cannot carry {kind.__name__}")


def decode_cursor(cursor: str, *kinds: type) -> tuple[Any, ...]:
    """The sort key a cursor carries, one value per kind; `BadCursor` for anything else."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("cursor too long")
        data = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        if not isinstance(data, list) or len(data) != len(kinds):
            raise ValueError("wrong shape")
        return tuple(_load(raw, kind) for raw, kind in zip(data, kinds, strict=True))
    except (binascii.Error, UnicodeError, ValueError, OverflowError, RecursionError) as exc:
        raise BadCursor() from exc


# The sort key of a list newest first: the last item's time, and its id, which orders the items
# that share a time (several rows written at one instant). None: a cursor of the time alone.
NewestFirstKey = tuple[datetime, uuid.UUID | None]


def decode_newest_first(cursor: str) -> NewestFirstKey:
    """The sort key a newest-first list's cursor carries; `BadCursor` for anything else. A
    cursor of the time alone, as these lists gave before they carried the id (or a page address
    that is an ISO 8601 time with its time zone), is taken too: the page then starts strictly
    before that time."""
    try:
        moment, item_id = decode_cursor(cursor, datetime, uuid.UUID)
        return moment, item_id
    except BadCursor:
        pass
    try:
        return decode_cursor(cursor, datetime)[0], None
    except BadCursor:
        pass
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("cursor too long")
        return _load(cursor, datetime), None
    except (ValueError, OverflowError) as exc:
        raise BadCursor() from exc


def older_than(moment: Any, item_id: Any, key: NewestFirstKey) -> ColumnElement[bool]:
    """The rows after `key` in a list ordered by `moment` then `item_id`, both descending."""
    before, last_id = key
    if last_id is None:
        return cast("ColumnElement[bool]", moment < before)
    return tuple_(moment, item_id) < tuple_(before, last_id)


def next_cursor(
    rows: Sequence[T], limit: int, key: Callable[[T], tuple[CursorValue, ...]]
) -> str | None:
    """The cursor after a page of `limit` items, given `limit + 1` rows (None on the last page)."""
    if len(rows) <= limit:
        return None
    return encode_cursor(*key(rows[limit - 1]))


async def keyset_pages(
    fetch: Callable[[K | None], Awaitable[Sequence[T]]], key: Callable[[T], K]
) -> AsyncIterator[Sequence[T]]:
    """Every page `fetch` returns, in order, until one comes back empty: each call is given the
    sort key of the last row of the page before (None for the first), as exports read a
    learner's rows a batch at a time."""
    after: K | None = None
    while True:
        page = await fetch(after)
        if not page:
            return
        yield page
        after = key(page[-1])
