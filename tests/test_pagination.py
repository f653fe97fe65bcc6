"""The one cursor codec: round trips, and every malformed cursor is a BadCursor."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from koan.pagination import (
    MAX_CURSOR_CHARS,
    BadCursor,
    decode_cursor,
    decode_newest_first,
    encode_cursor,
    next_cursor,
)


def _raw(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def test_a_cursor_round_trips_each_kind_of_value() -> None:
    key = (7, "py-loops", datetime(2026, 12, 5, 10, 30, tzinfo=UTC), date(2026, 1, 2), uuid.uuid4())
    cursor = encode_cursor(*key)
    assert decode_cursor(cursor, int, str, datetime, date, uuid.UUID) == key


def test_times_come_back_in_utc() -> None:
    local = datetime(2026, 12, 5, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    (moment,) = decode_cursor(encode_cursor(local), datetime)
    assert moment == local
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("cursor", "kinds"),
    [
        pytest.param("' UNION SELECT * FROM users--", (int,), id="not base64"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), (int,), id="not utf-8"),
        pytest.param(_raw({"a": 1}), (int,), id="not a list"),
        pytest.param(_raw([1, 2]), (int,), id="too many values"),
        pytest.param(_raw([]), (int,), id="too few values"),
        pytest.param(_raw([10**30]), (int,), id="integer too large"),
        pytest.param(_raw([-(2**31) - 1]), (int,), id="integer too small"),
        pytest.param(_raw([True]), (int,), id="a boolean is not an integer"),
        pytest.param(_raw([1.5]), (int,), id="a float is not an integer"),
        pytest.param(_raw(["3"]), (int,), id="a string is not an integer"),
        pytest.param(_raw([3]), (str,), id="an integer is not a string"),
        pytest.param(_raw(["2026-12-05T10:00:00"]), (datetime,), id="naive time"),
        pytest.param(_raw(["yesterday"]), (datetime,), id="not a time"),
        pytest.param(_raw(["99999-01-01"]), (date,), id="date out of range"),
        pytest.param(_raw(["not-a-uuid"]), (uuid.UUID,), id="not a uuid"),
        pytest.param(_raw([[[[1]]]]), (int,), id="nested"),
        pytest.param("A" * 5000, (str,), id="too long"),
    ],
)
def test_a_malformed_cursor_is_a_bad_cursor(cursor: str, kinds: tuple[type, ...]) -> None:
    with pytest.raises(BadCursor) as caught:
        decode_cursor(cursor, *kinds)
    assert caught.value.status_code == 400
    assert caught.value.code == "BadCursor"


def test_next_cursor_only_when_there_is_a_further_page() -> None:
    rows = [1, 2, 3]
    assert next_cursor(rows, 3, lambda r: (r,)) is None
    cursor = next_cursor(rows, 2, lambda r: (r,))
    assert cursor is not None
    assert decode_cursor(cursor, int) == (2,)


def test_a_naive_time_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="time zone"):
        encode_cursor(datetime(2026, 1, 1))


@pytest.mark.parametrize("letter", ["a", "я", "长", "😀", '"'])
def test_the_longest_sort_key_makes_a_cursor_every_route_takes(letter: str) -> None:
    # An exercise's title (200 letters) and slug (80): every route's `cursor` takes
    # MAX_CURSOR_CHARS, so the next page's address is never refused.
    key = (letter * 200, "s" * 80)
    cursor = encode_cursor(*key)
    assert len(cursor) <= MAX_CURSOR_CHARS
    assert decode_cursor(cursor, str, str) == key


def test_a_newest_first_cursor_carries_the_id_and_takes_a_time_alone_too() -> None:
    moment = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
    item = uuid.uuid4()
    assert decode_newest_first(encode_cursor(moment, item)) == (moment, item)
    # As these lists' cursors were before they carried the id, and as a page address.
    assert decode_newest_first(encode_cursor(moment)) == (moment, None)
    assert decode_newest_first("2026-11-03T10:30:00+01:00") == (moment, None)
    for bad in ("yesterday", "2026-11-03T09:30:00", encode_cursor("x", item), "x" * 3000):
        with pytest.raises(BadCursor):
            decode_newest_first(bad)
