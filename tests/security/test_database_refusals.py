"""What the database refuses of a client's input, or of two requests racing, is a 4xx.

PostgreSQL refuses NUL in text, values past a column's size and numbers it cannot encode; two
requests creating the same row at once meet a unique constraint, or one changes a row the other
deleted. Every such refusal is the client's input or timing (`koan.db.refusals`): 400 or 409,
never 500, on the API and the pages.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from koan.classes import service as classes_service
from koan.db.refusals import refusal
from koan.resources import Resources
from tests.conftest import Backend
from tests.fixtures.factories import bearer, create_user
from tests.web.conftest import log_in, post_form


class _Orig(Exception):
    def __init__(self, message: str, pgcode: str | None = None) -> None:
        super().__init__(message)
        self.pgcode = pgcode


def _db_error(kind: type[DBAPIError], message: str, pgcode: str | None = None) -> DBAPIError:
    return kind("SELECT 1", {}, _Orig(message, pgcode))


def test_refused_data_is_a_400_and_a_race_a_409_the_rest_stays_the_servers() -> None:
    nul = refusal(_db_error(DBAPIError, 'invalid byte sequence for encoding "UTF8": 0x00', "22021"))
    long = refusal(_db_error(DBAPIError, "value too long for type character varying(200)", "22001"))
    twice = refusal(_db_error(IntegrityError, "duplicate key value", "23505"))
    twice_lite = refusal(_db_error(IntegrityError, "UNIQUE constraint failed: users.email"))
    not_null = refusal(_db_error(IntegrityError, "null value in column", "23502"))
    by_zero = refusal(_db_error(DBAPIError, "division by zero", "22012"))
    # An update or delete of a row another request deleted since it was read.
    gone = refusal(StaleDataError("UPDATE statement on table 'classes' expected to update 1 row"))

    assert nul is not None
    assert (nul.status_code, nul.code) == (400, "BadValue")
    assert long is not None
    assert long.status_code == 400
    assert twice is not None
    assert (twice.status_code, twice.code) == (409, "Conflict")
    assert twice_lite is not None
    assert twice_lite.status_code == 409
    assert gone is not None
    assert (gone.status_code, gone.code) == (409, "Conflict")
    # The server's own mistakes stay 500s: they are bugs to see, not input to refuse.
    assert not_null is None
    assert by_zero is None
    assert refusal(ValueError("not the database")) is None


async def test_nul_in_a_join_code_is_a_client_error(
    client: httpx.AsyncClient, session: Any, resources: Resources, backend: Backend
) -> None:
    user = await create_user(session, resources)
    headers = await bearer(session, resources, user)

    r = await client.post("/api/v1/classes/join", json={"code": "AB\x00CDEFG"}, headers=headers)

    assert r.status_code in (400, 404, 422), r.text
    if backend.name == "postgres":
        assert r.status_code in (400, 422), r.text


async def test_a_race_the_database_refuses_is_a_409_on_the_api_and_the_pages(
    client: httpx.AsyncClient,
    session: Any,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two requests creating the same membership at once: the second meets the primary key.
    # (The suite's requests share one transaction, so the race itself is played here.)
    async def raced(*_args: Any, **_kwargs: Any) -> None:
        raise _db_error(IntegrityError, "duplicate key value violates unique constraint", "23505")

    monkeypatch.setattr(classes_service, "join", raced)
    user = await create_user(session, resources)
    headers = await bearer(session, resources, user)

    api = await client.post("/api/v1/classes/join", json={"code": "ABCDEFGH"}, headers=headers)
    await log_in(client, user)
    page = await post_form(client, "/classes", "/classes/join", {"code": "ABCDEFGH"})

    assert api.status_code == 409, api.text
    assert api.json()["error"] == "Conflict"
    assert page.status_code == 409, page.text
    assert "reload and try again" in page.text
