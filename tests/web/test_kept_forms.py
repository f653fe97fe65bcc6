"""Code posted without JavaScript after the login lapsed comes back in the form once the learner
has logged in again, and only in the browser that sent it."""

from __future__ import annotations

from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import User
from koan.resources import Resources
from koan.web.pagekit import END_SESSION_PATH
from tests.fixtures.factories import PASSWORD, create_exercise, create_user
from tests.web.conftest import csrf_from, log_in, on_exercise_page
from tests.web.test_work_kept import api_headers, editor_text

CODE = "def add(a, b):\n    # written at length, then the session lapsed\n    return a + b\n"


@pytest.fixture(autouse=True)
def _pages(web_app: FastAPI) -> FastAPI:
    return web_app


async def follow(client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    """Follow redirects as a browser without JavaScript does, pressing the resume page's
    "Continue" button on the way."""
    for _ in range(10):
        if response.status_code in (302, 303, 307):
            response = await client.get(response.headers["location"])
        elif 'action="/api/v1/auth/resume"' in response.text:
            next_url = unescape(response.text.split('name="next" value="')[1].split('"')[0])
            response = await client.post(
                "/api/v1/auth/resume", data={"csrf_token": csrf_from(response), "next": next_url}
            )
        else:
            return response
    raise AssertionError("too many redirects")


async def log_in_from(client: httpx.AsyncClient, login_page: httpx.Response, user: User) -> str:
    """Log in on the login page the browser was sent to; where the login leads."""
    assert login_page.url.path == "/login"
    next_url = parse_qs(urlsplit(str(login_page.url)).query)["next"][0]
    done = await client.post(
        "/login",
        data={
            "csrf_token": csrf_from(login_page),
            "email": user.email,
            "password": PASSWORD,
            "next": next_url,
        },
    )
    assert done.status_code == 303, done.text
    return str(done.headers["location"])


async def test_code_run_after_the_access_token_lapsed_comes_back_in_the_editor(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise, user, page = await on_exercise_page(client, session, resources)
    resources.clock.advance(timedelta(seconds=resources.settings.access_token_ttl_s + 60))

    with structlog.testing.capture_logs() as logs:
        sent = await client.post(
            f"/exercises/{exercise.id}/run", data={"csrf_token": csrf_from(page), "code": CODE}
        )
    assert sent.status_code == 303
    assert "add(a, b)" not in repr(logs)  # the learner's code is never logged

    back = await follow(client, sent)
    assert back.url.path == f"/exercises/{exercise.id}"
    assert unescape(editor_text(back.text)) == CODE
    assert "has not been run" in back.text  # put back in the form, not sent
    runs = await client.get(f"/api/v1/exercises/{exercise.id}/submissions")
    assert runs.json()["items"] == []


async def test_code_run_after_logging_out_in_another_tab_survives_the_login(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise, user, page = await on_exercise_page(client, session, resources)
    other_tab = await client.get("/dashboard")
    await client.post("/logout", data={"csrf_token": csrf_from(other_tab)})

    sent = await client.post(
        f"/exercises/{exercise.id}/run",
        data={"csrf_token": csrf_from(page), "code": CODE},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    login_page = await follow(client, sent)
    after = await log_in_from(client, login_page, user)
    back = await follow(client, await client.get(after))
    assert back.url.path == f"/exercises/{exercise.id}"
    assert unescape(editor_text(back.text)) == CODE

    # Once the learner has moved on (a newer draft), the kept code no longer comes back.
    await client.put(
        f"/api/v1/drafts/{exercise.id}", json={"code": "newer"}, headers=api_headers(client)
    )
    again = await client.get(back.url.raw_path.decode())
    assert editor_text(again.text) == "newer"


async def test_kept_code_comes_back_only_in_the_browser_that_sent_it(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, app: FastAPI
) -> None:
    exercise, user, page = await on_exercise_page(client, session, resources)
    resources.clock.advance(timedelta(seconds=resources.settings.access_token_ttl_s + 60))
    sent = await client.post(
        f"/exercises/{exercise.id}/run", data={"csrf_token": csrf_from(page), "code": CODE}
    )
    back = await follow(client, sent)
    address = back.url.raw_path.decode()
    assert "kept=" in address

    # The address alone (a history entry, a log line) opens the page without the code.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        await log_in(other, await create_user(session, resources, onboarded=True))
        elsewhere = await other.get(address)
        assert elsewhere.status_code == 200
        assert unescape(editor_text(elsewhere.text)) == exercise.starter_code

    # Logging out (the pages' form) forgets it on this browser too.
    await client.post(END_SESSION_PATH, data={"csrf_token": csrf_from(back)})
    await log_in(client, user)
    assert unescape(editor_text((await client.get(address)).text)) == exercise.starter_code


async def test_a_post_from_another_site_keeps_nothing(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """Another site cannot put code in a learner's editor by posting it while they are out."""
    exercise = await create_exercise(session)
    sent = await client.post(
        f"/exercises/{exercise.id}/run",
        data={"code": CODE},
        headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://elsewhere.example"},
    )
    assert sent.status_code == 303
    assert "kept" not in sent.headers["location"]
    assert "koan_kept" not in sent.headers.get("set-cookie", "")


async def test_only_forms_whose_page_puts_them_back_are_kept(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    page = await client.get("/login")  # a visitor's CSRF cookie and token
    sent = await client.post(
        "/classes/join", data={"csrf_token": csrf_from(page), "code": "ABCD-1234"}
    )
    assert sent.status_code == 303
    assert "kept" not in sent.headers["location"]


async def test_each_kept_form_gives_the_browser_its_secret_for_as_long_as_it_lasts(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session)
    page = await client.get("/login")
    for attempt in range(2):
        sent = await client.post(
            f"/exercises/{exercise.id}/run",
            data={"csrf_token": csrf_from(page), "code": f"{CODE}# {attempt}\n"},
        )
        assert "kept" in sent.headers["location"]
        cookie = sent.headers.get("set-cookie", "")
        assert "koan_kept=" in cookie
        assert f"Max-Age={resources.settings.kept_form_ttl_s}" in cookie


async def test_code_run_from_a_page_of_an_earlier_login_comes_back_unsent(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """Logged out and in again in another tab: the page's form carries the old session's CSRF
    token, which is refused; the code is not run, and not thrown away either."""
    exercise, user, page = await on_exercise_page(client, session, resources)
    other_tab = await client.get("/dashboard")
    await client.post("/logout", data={"csrf_token": csrf_from(other_tab)})
    await log_in(client, user)

    sent = await client.post(
        f"/exercises/{exercise.id}/run",
        data={"csrf_token": csrf_from(page), "code": CODE},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert sent.status_code == 303
    back = await follow(client, sent)
    assert back.url.path == f"/exercises/{exercise.id}"
    assert unescape(editor_text(back.text)) == CODE
    assert "has not been run" in back.text
    runs = await client.get(f"/api/v1/exercises/{exercise.id}/submissions")
    assert runs.json()["items"] == []

    # Without the browser's word that the post is the site's own, it is refused as before.
    forged = await client.post(
        f"/exercises/{exercise.id}/run", data={"csrf_token": csrf_from(page), "code": CODE}
    )
    assert forged.status_code == 403


GOALS = "Automate the reports I write by hand every Monday, then read other people's code."


async def test_goals_answered_after_the_access_token_lapsed_come_back_in_the_interview(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    await log_in(client, await create_user(session, resources))
    page = await client.get("/onboarding?step=goals")
    resources.clock.advance(timedelta(seconds=resources.settings.access_token_ttl_s + 60))

    sent = await client.post(
        "/onboarding",
        data={"csrf_token": csrf_from(page), "question": "goals", "answer": GOALS},
    )
    assert sent.status_code == 303
    back = await follow(client, sent)
    assert back.url.path == "/onboarding"
    assert "What do you want to be able to do?" in back.text
    textarea = back.text.split('id="f-answer"')[1].split(">", 1)[1].split("</textarea>")[0]
    assert unescape(textarea) == GOALS
    assert "has not been saved" in back.text  # put back in the form, not sent
