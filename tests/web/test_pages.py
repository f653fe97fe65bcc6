"""The web pages over HTTP (no browser): auth flows, CSRF, redirects, forms, practice."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.exercises.submit import in_flight_slot
from koan.models import Assignment, LearnerProfile, Submission, User
from koan.resources import Resources
from tests.fixtures.factories import ADD_SOLUTION, PASSWORD, create_exercise, create_user
from tests.fixtures.smtp import SMTPServer
from tests.web.conftest import csrf_from, log_in, on_exercise_page, post_form

NEW_PASSWORD = "another quite long passphrase 7"


@pytest.fixture(autouse=True)
def _pages(web_app: FastAPI) -> FastAPI:
    return web_app


def htmx(client: httpx.AsyncClient) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRF-Token": client.cookies.get("koan_csrf") or ""}


# --- public pages, CSP, landmarks -------------------------------------------------------------


class _Audit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self.landmarks: set[str] = set()
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.inline_scripts += 1
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag in ("header", "nav", "main", "footer"):
            self.landmarks.add(tag)
        if names.get("id"):
            self.ids.append(str(names["id"]))


def audit(html: str) -> _Audit:
    parser = _Audit()
    parser.feed(html)
    return parser


PUBLIC = [
    "/",
    "/register",
    "/login",
    "/forgot-password",
    "/reset-password?token=abc",
    "/verify-email?token=abc",
    "/check-email",
]


@pytest.mark.parametrize("path", PUBLIC)
async def test_public_pages_are_html_with_landmarks_and_no_inline_script(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    found = audit(response.text)
    assert found.inline_scripts == 0
    assert found.handlers == []
    assert {"header", "nav", "main", "footer"} <= found.landmarks
    assert len(found.ids) == len(set(found.ids)), "duplicate ids"
    assert 'href="#main"' in response.text  # the skip link


@pytest.mark.parametrize("path", ["/docsx", "/docs/no-such-page", "/redocument", "/redoc/x"])
async def test_only_the_api_docs_pages_go_without_the_script_policy(
    client: httpx.AsyncClient, path: str
) -> None:
    """The API docs pages need their inline script; any other address that merely starts
    like them (a dead link, a page added later) keeps the policy that blocks inline script."""
    response = await client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 404
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy


HX_HEADERS = re.compile(r"<body hx-headers='([^']*)'")


@pytest.mark.parametrize("path", ["/login", "/register", "/forgot-password"])
async def test_a_planted_csrf_cookie_adds_no_header_to_the_pages_requests(
    client: httpx.AsyncClient, path: str
) -> None:
    """The page's HTMX requests send the headers the body names as JSON. A koan_csrf cookie
    that Koan did not set (a sibling subdomain can plant one) must not reach that JSON as
    more than a string, nor name another header (a bearer token of the planter's account)."""
    planted = 'x", "Authorization": "Bearer planted'
    response = await client.get(path, headers={"Cookie": f"koan_csrf={planted}"})
    assert response.status_code == 200
    match = HX_HEADERS.search(response.text)
    assert match, "no hx-headers on the page"
    sent = json.loads(unescape(match.group(1)))
    assert sent == {"X-CSRF-Token": csrf_from(response)}
    assert "planted" not in response.text
    # The page gives the browser a token of its own, which its forms repeat.
    assert response.cookies.get("koan_csrf") == csrf_from(response)


async def test_static_assets_are_served(client: httpx.AsyncClient) -> None:
    for path in ("/static/css/koan.css", "/static/js/koan.js", "/static/vendor/htmx.min.js"):
        response = await client.get(path)
        assert response.status_code == 200, path
        # The same for everyone: browsers may keep them (unlike every page, below).
        assert "no-store" not in response.headers.get("cache-control", ""), path


async def test_no_cache_keeps_a_signed_in_page_or_a_reset_link_page(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    assert (await client.get("/reset-password?token=abc")).headers["cache-control"] == "no-store"
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    for path in ("/dashboard", "/settings", "/classes"):
        assert (await client.get(path)).headers["cache-control"] == "no-store", path


# --- signing up, verifying, logging in ---------------------------------------------------------


async def test_register_verify_and_log_in(
    client: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    email = f"web-{uuid.uuid4().hex[:10]}@example.com"
    response = await post_form(
        client,
        "/register",
        "/register",
        {"name": "Ada", "email": email, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD},
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/check-email")
    token = smtp_server.last_to(email).link_token("/verify-email")

    page = await client.get(f"/verify-email?token={token}")
    assert "Verify my email" in page.text
    verified = await client.post(
        "/verify-email", data={"csrf_token": csrf_from(page), "token": token}
    )
    assert verified.headers["location"] == "/login?verified=1"
    again = await client.post("/verify-email", data={"csrf_token": csrf_from(page), "token": token})
    assert "already been used" in again.text

    logged_in = await post_form(
        client, "/login", "/login", {"email": email, "password": NEW_PASSWORD}
    )
    assert logged_in.status_code == 303
    assert logged_in.headers["location"] == "/onboarding"
    assert {"koan_access", "koan_csrf"} <= set(client.cookies.keys())


async def test_register_errors_are_shown_beside_the_fields(client: httpx.AsyncClient) -> None:
    response = await post_form(
        client,
        "/register",
        "/register",
        {"name": "", "email": "not-an-email", "password": "short", "password_confirm": "other"},
    )
    assert response.status_code == 422
    assert 'id="f-email-error"' in response.text
    assert "valid email address" in response.text
    assert 'id="f-name-error"' in response.text
    assert 'id="f-password_confirm-error"' in response.text
    assert 'aria-invalid="true"' in response.text
    assert "Traceback" not in response.text
    assert 'value="not-an-email"' in response.text  # what was typed is kept


async def test_weak_password_message_is_on_the_password_field(client: httpx.AsyncClient) -> None:
    response = await post_form(
        client,
        "/register",
        "/register",
        {
            "name": "A",
            "email": "weak@example.com",
            "password": "short",
            "password_confirm": "short",
        },
    )
    assert response.status_code == 422
    assert re.search(r'id="f-password-error".*12', response.text, re.S)


async def test_sign_up_shows_every_password_problem_at_once(client: httpx.AsyncClient) -> None:
    # A short, easily guessed password, not repeated, beside a blank name: one answer says all.
    response = await post_form(
        client,
        "/register",
        "/register",
        {"name": "", "email": "all@example.com", "password": "abababab", "password_confirm": "x"},
    )
    assert response.status_code == 422
    password_error = re.search(r'id="f-password-error">(.*?)</p>', response.text, re.S)
    assert password_error is not None
    assert "at least 12 characters" in password_error.group(1)
    assert "too common" in password_error.group(1)
    assert 'id="f-password_confirm-error"' in response.text
    assert 'id="f-name-error"' in response.text

    # The API names every problem too.
    api = await client.post(
        "/api/v1/auth/register",
        json={"email": "all@example.com", "name": "A", "password": "abababab"},
    )
    assert api.status_code == 422
    assert "12 characters" in api.json()["detail"]
    assert "too common" in api.json()["detail"]


async def test_wrong_password_is_a_friendly_message(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    response = await post_form(
        client, "/login", "/login", {"email": user.email, "password": "wrong password here"}
    )
    assert response.status_code == 401
    assert "The email or password is incorrect." in response.text
    assert "koan_access" not in client.cookies


async def test_a_form_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    await client.get("/login")
    response = await client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Reload the page" in response.text
    forged = await client.post(
        "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert forged.status_code == 403


async def test_logged_in_forms_need_the_token_too(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    response = await client.post("/settings/profile", data={"name": "Mallory", "timezone": "UTC"})
    assert response.status_code == 403
    assert await session.scalar(select(User.name).where(User.id == user.id)) != "Mallory"


async def test_login_next_is_followed_only_within_the_site(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    for target, expected in (("/progress", "/progress"), ("//evil.example", "/dashboard")):
        client.cookies.clear()
        response = await post_form(
            client,
            "/login",
            "/login",
            {"email": user.email, "password": PASSWORD, "next": target},
        )
        assert response.headers["location"] == expected


async def test_a_next_address_past_latin_1_is_followed_by_htmx_too(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """HTMX is sent on with a header, which holds no character past Latin-1: the address goes
    percent-encoded, as in a redirect's Location, instead of failing the request."""
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    response = await client.get("/login?next=/exercises?q=%E2%82%AC", headers=htmx(client))
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/exercises?q=%E2%82%AC"
    plain = await client.get("/login?next=/exercises?q=%E2%82%AC")
    assert plain.headers["location"] == response.headers["HX-Redirect"]


async def test_an_unverified_user_is_sent_to_check_email(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, verified=False)
    await log_in(client, user)
    response = await client.get("/dashboard")
    assert response.headers["location"] == "/check-email"
    page = await client.get("/check-email")
    assert user.email in page.text
    assert "Send a new link" in page.text
    resent = await post_form(client, "/check-email", "/check-email/resend", {})
    assert resent.status_code == 303  # POST-redirect-GET: a reload sends no other mail
    assert "A new link is on its way" in (await client.get(resent.headers["location"])).text


async def test_password_reset_by_mail(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, smtp_server: SMTPServer
) -> None:
    user = await create_user(session, resources)
    sent = await post_form(client, "/forgot-password", "/forgot-password", {"email": user.email})
    # POST-redirect-GET: a reload shows the page again instead of sending another mail.
    assert sent.status_code == 303
    shown = await client.get(sent.headers["location"])
    assert "a reset link is on its way" in shown.text
    assert user.email in shown.text
    token = smtp_server.last_to(user.email).link_token("/reset-password")
    form = await client.get(f"/reset-password?token={token}")
    mismatch = await client.post(
        "/reset-password",
        data={
            "csrf_token": csrf_from(form),
            "token": token,
            "new_password": NEW_PASSWORD,
            "password_confirm": "different",
        },
    )
    assert "not the same" in mismatch.text
    done = await client.post(
        "/reset-password",
        data={
            "csrf_token": csrf_from(form),
            "token": token,
            "new_password": NEW_PASSWORD,
            "password_confirm": NEW_PASSWORD,
        },
    )
    assert done.headers["location"] == "/login?reset=1"
    await log_in(client, user, NEW_PASSWORD)


@pytest.mark.parametrize("page", ["/verify-email", "/reset-password"])
async def test_a_mangled_mailed_link_says_the_link_is_invalid(
    client: httpx.AsyncClient, page: str
) -> None:
    """A token longer than any mailed one (a link run together with the text after it): the
    page says the link does not work and how to get another, not that the page does not exist."""
    response = await client.get(page, params={"token": "A" * 43 + "-and-the-next-line" * 12})
    assert response.status_code == 400
    assert "This link is invalid" in response.text
    assert "Ask for a new link" in response.text or "ask for a new link" in response.text


# --- sessions: login required, transparent refresh, logout --------------------------------------


async def test_pages_need_a_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/dashboard"


async def test_an_expired_page_session_is_renewed_with_the_refresh_cookie(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    old_access = client.cookies.get("koan_access")
    resources.clock.advance(timedelta(seconds=resources.settings.access_token_ttl_s + 60))

    response = await client.get("/progress")
    assert response.status_code == 303
    assert response.headers["location"] == "/api/v1/auth/resume?next=/progress"
    form = await client.get(response.headers["location"])
    assert client.cookies.get("koan_access") == old_access  # the GET changes nothing
    renewed = await client.post(
        "/api/v1/auth/resume", data={"csrf_token": csrf_from(form), "next": "/progress"}
    )
    assert renewed.headers["location"] == "/progress"
    assert client.cookies.get("koan_access") != old_access
    page = await client.get("/progress")
    assert page.status_code == 200


async def test_a_session_that_lapsed_on_a_long_address_comes_back_to_it(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """Sixty Chinese letters in a search are 540 characters percent-encoded: the resume and
    login pages took a `next` of 500 at most and answered 404 "There is nothing at this
    address" on the way back."""
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    search = await client.get("/exercises", params={"q": "中文" * 30})
    address = search.url.raw_path.decode()
    assert len(address) > 500
    resources.clock.advance(timedelta(seconds=resources.settings.access_token_ttl_s + 60))

    response = await client.get(address)
    form = await client.get(response.headers["location"])
    assert form.status_code == 200
    back = re.search(r'name="next" value="([^"]+)"', form.text)
    assert back is not None
    assert unescape(back.group(1)) == address
    renewed = await client.post(
        "/api/v1/auth/resume", data={"csrf_token": csrf_from(form), "next": address}
    )
    assert renewed.headers["location"] == address
    client.cookies.clear()
    login = await client.get((await client.get(address)).headers["location"])
    assert login.status_code == 200
    assert f'name="next" value="{address}"' in login.text


async def test_a_resume_posted_without_the_csrf_token_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    refresh = client.cookies.get("koan_refresh", path="/api/v1/auth")
    resources.clock.advance(timedelta(seconds=resources.settings.access_token_ttl_s + 60))
    forced = await client.post("/api/v1/auth/resume", data={"next": "/progress"})
    assert forced.headers["location"].startswith("/login")
    assert "set-cookie" not in forced.headers
    assert client.cookies.get("koan_refresh", path="/api/v1/auth") == refresh


async def test_resume_without_a_refresh_token_goes_to_login(client: httpx.AsyncClient) -> None:
    client.cookies.set("koan_csrf", "left-over")
    response = await client.get("/dashboard")
    assert response.headers["location"].startswith("/api/v1/auth/resume")
    resumed = await client.get(response.headers["location"])
    assert resumed.headers["location"] == "/login?next=/dashboard"


async def test_htmx_requests_without_a_session_get_a_401_not_a_navigation(
    client: httpx.AsyncClient,
) -> None:
    # A navigation would throw away the page (the code in the editor): the page's script
    # renews the session and sends the request again, or shows this message with a way back.
    response = await client.post(
        "/exercises/00000000-0000-0000-0000-000000000000/hint",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/exercises/x"},
    )
    assert response.status_code == 401
    assert "HX-Redirect" not in response.headers
    assert response.headers["X-Koan-Session"] == "expired"
    assert response.headers["HX-Retarget"] == "#flash"
    assert "Your session has ended" in response.text
    assert 'href="/login?next=/exercises/x"' in response.text


async def test_logout_ends_the_session(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    access = client.cookies.get("koan_access")
    response = await post_form(client, "/dashboard", "/logout", {})
    assert response.headers["location"] == "/"
    client.cookies.set("koan_access", access or "")
    after = await client.get("/dashboard")
    assert after.status_code == 303


async def test_logging_out_after_the_access_cookie_lapsed_ends_the_session(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """Without script nothing renews the access cookie before the form is sent: logging out
    then must still end the session, not lead through a renewal back into it."""
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    page = await client.get("/dashboard")
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*data-log-out>', page.text)
    assert form is not None
    refresh = client.cookies.get("koan_refresh", path="/api/v1/auth")
    resources.clock.advance(timedelta(seconds=resources.settings.access_token_ttl_s + 60))

    response = await client.post(form.group(1), data={"csrf_token": csrf_from(page)})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert client.cookies.get("koan_refresh", path="/api/v1/auth") is None
    renewed = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert renewed.status_code == 401
    assert (await client.get("/dashboard")).headers["location"] == "/login?next=/dashboard"


async def test_a_bad_optional_parameter_is_ignored_not_a_missing_page(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    exercise = await create_exercise(session)
    welcomed = await client.get("/dashboard?welcome=1")
    assert "Your first exercise is ready" in welcomed.text
    for path in (
        "/dashboard?welcome=zz",
        "/exercises?q=" + "x" * 101,
        f"/exercises/{exercise.id}?unlocked=" + "x" * 501,
        f"/exercises/{exercise.id}?kept=" + "x" * 101,
    ):
        shown = await client.get(path)
        assert shown.status_code == 200, path[:60]
        assert "Your first exercise is ready" not in shown.text
    # A parameter naming what to show still answers that it is not there.
    assert (await client.get("/chat?c=" + "x" * 41)).status_code == 404
    assert (await client.get("/chat?c=nonsense")).status_code == 404

    newcomer = await create_user(session, resources)
    client.cookies.clear()
    await log_in(client, newcomer)
    interview = await client.get("/onboarding?step=" + "x" * 41)
    assert interview.status_code == 200
    assert "Question 1 of 7" in interview.text


async def test_a_log_out_form_from_another_site_ends_nothing(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    page = await client.get("/dashboard")
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*data-log-out>', page.text)
    assert form is not None
    resources.clock.advance(timedelta(seconds=resources.settings.access_token_ttl_s + 60))
    forged = await client.post(form.group(1), data={"csrf_token": "guessed"})
    assert forged.status_code == 403
    assert client.cookies.get("koan_refresh", path="/api/v1/auth") is not None
    renewed = await client.post(
        "/api/v1/auth/refresh", headers={"X-CSRF-Token": client.cookies["koan_csrf"]}
    )
    assert renewed.status_code == 200


# --- onboarding --------------------------------------------------------------------------------


async def answer(client: httpx.AsyncClient, question: str, *values: str) -> httpx.Response:
    page = await client.get(f"/onboarding?step={question}")
    data: dict[str, str | list[str]] = {"csrf_token": csrf_from(page), "question": question}
    data["answer"] = list(values)
    return await client.post("/onboarding", data=data)


async def test_onboarding_one_question_at_a_time_resumable(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    await log_in(client, user)
    first = await client.get("/onboarding")
    assert "Question 1 of 7" in first.text
    assert (await answer(client, "language", "python")).headers["location"] == (
        "/onboarding?step=experience"
    )
    await answer(client, "experience", "beginner")

    client.cookies.clear()
    await log_in(client, user)
    resumed = await client.get("/onboarding")
    assert "Question 3 of 7" in resumed.text  # where the learner stopped

    missing = await answer(client, "goals")
    assert missing.status_code == 422
    assert "Please answer this question" in missing.text
    await answer(client, "goals", "Pass interviews")
    await answer(client, "interests", "algorithms", "web")
    await answer(client, "learning_style")  # optional: may be left out
    bad = await answer(client, "minutes_per_day", "1000")
    assert bad.status_code == 422
    assert "from 5 to 240" in bad.text
    await answer(client, "minutes_per_day", "30")
    bad_zone = await answer(client, "timezone", "Mars/Olympus")
    assert bad_zone.status_code == 422
    done = await answer(client, "timezone", "Europe/Paris")
    assert done.headers["location"] == "/dashboard?welcome=1"
    row = (
        await session.execute(
            select(LearnerProfile.onboarding_completed, LearnerProfile.interests).where(
                LearnerProfile.user_id == user.id
            )
        )
    ).one()
    assert tuple(row) == (True, ["algorithms", "web"])
    assert (await client.get("/onboarding")).headers["location"] == "/dashboard"


class _Described(HTMLParser):
    """Each element's id, and the ids that each `aria-describedby` names."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}
        self.described: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        key = str(names.get("id") or tag)
        if names.get("id"):
            self.ids[str(names["id"])] = tag
        if names.get("aria-describedby"):
            self.described[key] = str(names["aria-describedby"]).split()


def described(html: str) -> _Described:
    parser = _Described()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("step", ["language", "interests"])
async def test_onboarding_choice_help_describes_the_fieldset(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, step: str
) -> None:
    user = await create_user(session, resources)
    await log_in(client, user)
    page = described((await client.get(f"/onboarding?step={step}")).text)
    assert page.described["fieldset"] == ["q-help"]
    assert page.ids["q-help"] == "p"
    if step == "language":
        refused = described((await answer(client, "language")).text)
        assert refused.described["fieldset"] == ["q-help", "q-error"]


async def test_onboarding_minutes_unit_describes_the_number_field(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    await log_in(client, user)
    page = described((await client.get("/onboarding?step=minutes_per_day")).text)
    assert page.described["f-answer"] == ["q-unit"]
    assert page.ids["q-unit"] == "span"
    refused = described((await answer(client, "minutes_per_day", "1000")).text)
    assert refused.described["f-answer"] == ["q-unit", "q-error"]


async def test_goals_too_long_are_refused_in_characters_and_kept(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    await log_in(client, user)
    typed = "g" * 1200
    refused = await answer(client, "goals", typed)
    assert refused.status_code == 422
    assert "Keep this to 1000 characters or fewer." in refused.text
    assert typed in refused.text  # what was typed stays in the field

    onboarded = await create_user(session, resources, onboarded=True)
    client.cookies.clear()
    await log_in(client, onboarded)
    wanted = {"language": "python", "experience": "beginner", "minutes_per_day": "20"}
    refused = await post_form(client, "/settings", "/settings/learning", {**wanted, "goals": typed})
    assert refused.status_code == 422
    assert 'id="f-goals-error"' in refused.text
    assert "Keep this to 1000 characters or fewer." in refused.text
    assert typed in refused.text


async def test_settings_refuse_to_clear_the_goals_and_keep_what_was_typed(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    wanted = {"language": "python", "experience": "beginner", "minutes_per_day": "25"}
    refused = await post_form(client, "/settings", "/settings/learning", {**wanted, "goals": "  "})
    assert refused.status_code == 422
    assert 'id="f-goals-error"' in refused.text
    assert "cannot be cleared" in refused.text
    assert 'value="25"' in refused.text  # what was typed stays
    goals = await session.scalar(
        select(LearnerProfile.goals).where(LearnerProfile.user_id == user.id)
    )
    assert goals


async def test_pages_send_a_learner_without_onboarding_to_it(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    await log_in(client, user)
    response = await client.get("/dashboard")
    assert response.headers["location"] == "/onboarding"


# --- practice ----------------------------------------------------------------------------------


async def test_dashboard_shows_the_daily_exercise_and_why(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session, title="Add them up")
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert "Why this one:" in page.text
    assert f"/exercises/{exercise.id}" in page.text or "Start the exercise" in page.text


async def test_run_tests_shows_each_test_and_then_a_pass(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise, user, page = await on_exercise_page(client, session, resources)
    assert "def add(a, b):" in page.text  # the starter code is in the editor

    failing = await client.post(
        f"/exercises/{exercise.id}/run", data={"code": "def add(a, b):\n    return a - b\n"},
        headers=htmx(client),
    )  # fmt: skip
    assert failing.status_code == 200
    assert 'data-status="failed"' in failing.text
    assert "test_small" in failing.text
    assert "1 + 2 should be 3" in failing.text
    assert "<html" not in failing.text  # a fragment for HTMX

    passing = await client.post(
        f"/exercises/{exercise.id}/run", data={"code": ADD_SOLUTION}, headers=htmx(client)
    )
    assert 'data-status="passed"' in passing.text
    assert "All tests passed" in passing.text
    assert "4 of 4 tests passed" in passing.text

    again = await client.get(f"/exercises/{exercise.id}")
    assert "Completed" in again.text
    assert "return a + b" in again.text  # the latest code comes back


async def test_run_without_javascript_renders_the_whole_page(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise, user, page = await on_exercise_page(client, session, resources)
    response = await client.post(
        f"/exercises/{exercise.id}/run", data={"csrf_token": csrf_from(page), "code": "   "}
    )
    assert response.status_code == 422
    assert "<html" in response.text
    assert "write some code first" in response.text


async def test_without_javascript_a_run_and_a_hint_redirect_so_a_reload_repeats_neither(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise, user, page = await on_exercise_page(client, session, resources)
    token = csrf_from(page)

    hint = await client.post(f"/exercises/{exercise.id}/hint", data={"csrf_token": token})
    assert hint.status_code == 303
    assert hint.headers["location"] == f"/exercises/{exercise.id}#hints-panel"
    for _ in range(2):  # the page, then a reload: still one hint
        shown = await client.get(hint.headers["location"])
        assert shown.text.count('class="hint-item"') == 1

    broken = await client.post(
        f"/exercises/{exercise.id}/run",
        data={"csrf_token": token, "code": "def add(a, b)\n    return a + b\n"},
    )
    assert broken.status_code == 303
    shown = await client.get(broken.headers["location"])
    assert shown.text.count('class="test-message shared-error"') == 1  # shown once
    assert 'data-error-line="1"' in shown.text

    passed = await client.post(
        f"/exercises/{exercise.id}/run", data={"csrf_token": token, "code": ADD_SOLUTION}
    )
    assert passed.status_code == 303
    assert passed.headers["location"].startswith(f"/exercises/{exercise.id}?unlocked=")
    shown = await client.get(passed.headers["location"])
    assert 'data-status="passed"' in shown.text
    assert "Achievement unlocked!" in shown.text
    assert "First steps" in shown.text
    again = await client.get(f"/exercises/{exercise.id}")  # later visits celebrate nothing
    assert "Achievement unlocked!" not in again.text
    submissions = await session.scalar(
        select(func.count()).select_from(Submission).where(Submission.user_id == user.id)
    )
    assert submissions == 2


async def test_run_past_the_in_flight_cap_keeps_the_code_and_says_when_to_retry(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session)
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    code = "def add(a, b):\n    return b + a  # mine\n"
    async with in_flight_slot(resources, user.id), in_flight_slot(resources, user.id):
        refused = await client.post(
            f"/exercises/{exercise.id}/run", data={"code": code}, headers=htmx(client)
        )
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "being graded" in refused.text
    page = await client.get(f"/exercises/{exercise.id}")
    assert "return b + a  # mine" in page.text  # kept, and back in the editor
    assert "Not graded" in page.text


async def test_hints_climb_the_ladder_then_stop(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session)
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    await client.get(f"/exercises/{exercise.id}")
    texts = []
    for _ in range(3):
        response = await client.post(f"/exercises/{exercise.id}/hint", headers=htmx(client))
        texts.append(response.text)
    assert "Which operator adds?" in texts[0]
    assert "2 left" in texts[0]
    assert texts[2].count('class="hint-item"') == 3
    assert "That was the last hint" in texts[2]
    extra = await client.post(f"/exercises/{exercise.id}/hint", headers=htmx(client))
    assert "seen every hint" in extra.text


async def test_skip_then_resume(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise, user, page = await on_exercise_page(client, session, resources)
    await client.post(f"/exercises/{exercise.id}/start", data={"csrf_token": csrf_from(page)})
    skipped = await client.post(
        f"/exercises/{exercise.id}/skip", data={"csrf_token": csrf_from(page)}
    )
    assert skipped.headers["location"] == "/dashboard?skipped=1"
    blocked = await client.post(
        f"/exercises/{exercise.id}/run", data={"code": ADD_SOLUTION}, headers=htmx(client)
    )
    assert blocked.status_code == 409
    assert "You skipped this exercise" in blocked.text
    page = await client.get(f"/exercises/{exercise.id}")
    assert "Resume this exercise" in page.text
    resumed = await client.post(
        f"/exercises/{exercise.id}/start", data={"csrf_token": csrf_from(page)}
    )
    assert resumed.headers["location"] == f"/exercises/{exercise.id}"


async def test_the_skip_deadline_is_on_the_learners_clock(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session, title="Skip me")
    user = await create_user(session, resources, onboarded=True)  # Europe/Paris
    await log_in(client, user)
    page = await client.get(f"/exercises/{exercise.id}")
    await client.post(f"/exercises/{exercise.id}/start", data={"csrf_token": csrf_from(page)})
    await client.post(f"/exercises/{exercise.id}/skip", data={"csrf_token": csrf_from(page)})
    skipped_at = await session.scalar(
        select(Assignment.skipped_at).where(Assignment.exercise_id == exercise.id)
    )
    assert skipped_at is not None
    until = (skipped_at + timedelta(hours=48)).astimezone(ZoneInfo("Europe/Paris"))
    shown = f"{until.strftime('%a %d %b, %H:%M')}, Europe/Paris time"

    again = await client.get(f"/exercises/{exercise.id}")
    assert f"Resume it by {until.strftime('%a %d %b, %H:%M')} (Europe/Paris time)" in again.text
    dashboard = await client.get("/dashboard")
    assert f'Skip me</a> <span class="muted">(until {shown})' in dashboard.text
    assert "UTC" not in dashboard.text


async def test_after_todays_exercise_the_next_one_is_offered_as_one_more(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    for title in ("First of two", "Second of two"):
        await create_exercise(session, title=title)
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    first = await client.get("/dashboard")
    assert "Today's exercise ·" in first.text
    assert "You finished today's exercise" not in first.text
    found = re.search(r'href="/exercises/([0-9a-f-]{36})"', first.text)
    assert found is not None
    await client.get(f"/exercises/{found.group(1)}")
    passed = await client.post(
        f"/exercises/{found.group(1)}/run", data={"code": ADD_SOLUTION}, headers=htmx(client)
    )
    assert 'data-status="passed"' in passed.text

    after = await client.get("/dashboard")
    assert "You finished today's exercise" in after.text
    assert f'href="/exercises/{found.group(1)}"' in after.text
    assert "One more ·" in after.text
    assert "Today's exercise ·" not in after.text
    extra = re.search(r'<h2 id="today-title">([^<]+)</h2>', after.text)
    assert extra is not None
    # The exercise page says so too; the one finished today does not.
    extra_id = re.search(r'id="today-title".*?href="/exercises/([0-9a-f-]{36})"', after.text, re.S)
    assert extra_id is not None
    assert extra_id.group(1) != found.group(1)
    assert "One more ·" in (await client.get(f"/exercises/{extra_id.group(1)}")).text
    assert "One more ·" not in (await client.get(f"/exercises/{found.group(1)}")).text

    # The next day, on the learner's clock, that one is the day's exercise.
    resources.clock.advance(timedelta(days=1))
    await log_in(client, user)
    next_day = await client.get("/dashboard")
    assert "Today's exercise ·" in next_day.text
    assert f'<h2 id="today-title">{extra.group(1)}</h2>' in next_day.text
    assert "One more ·" not in next_day.text
    assert "You finished today's exercise" not in next_day.text


async def test_statement_markdown_is_rendered_and_raw_html_escaped(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(
        session,
        statement="Write **add**.\n\n<script>alert(1)</script>\n\n```py\nadd(1, 2)\n```\n"
        "[click](javascript:alert(1))",
    )
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    page = await client.get(f"/exercises/{exercise.id}")
    assert "<strong>add</strong>" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert '<code class="language-python">' in page.text
    assert 'href="javascript:' not in page.text


async def test_unknown_exercise_is_a_friendly_404(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    for path in ("/exercises/00000000-0000-0000-0000-000000000000", "/exercises/not-a-uuid"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "Back to today" in response.text


async def test_a_dead_link_is_a_page_for_browsers_and_json_for_programs(
    client: httpx.AsyncClient,
) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = await client.get("/no/such/page", headers=browser)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is nothing at this address." in page.text
    assert "Back to the front page" in page.text
    # Programs, and every API address even from a browser, keep the JSON error body.
    for path, headers in (
        ("/no/such/page", {}),
        ("/api/v1/no-such-route", browser),
        ("/static/no-such-file.css", browser),
    ):
        r = await client.get(path, headers=headers)
        assert r.status_code == 404
        assert r.json()["error"] == "NotFound"


async def test_a_wrong_method_or_a_dead_link_from_a_page_is_a_page_or_a_fragment(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """A form posted to an address that only shows a page, and a request HTMX makes (it asks
    with Accept: */*) to an address that is gone, answer as pages do: never a JSON body that
    HTMX would swap in as text."""
    exercise = await create_exercise(session)
    await log_in(client, await create_user(session, resources, onboarded=True))
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    wrong = await client.post("/dashboard", headers=browser, data={"x": "1"})
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith("text/html")
    assert "GET" in wrong.headers["allow"]
    assert "Back to today" in wrong.text
    from_htmx = {"Accept": "*/*", **htmx(client)}
    for response in (
        await client.post(f"/exercises/{exercise.id}", headers=from_htmx),
        await client.get("/no/such/fragment", headers=from_htmx),
    ):
        assert response.status_code in (404, 405)
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["HX-Retarget"] == "#flash"
        assert 'role="alert"' in response.text
    # Programs keep the JSON body.
    program = await client.post("/dashboard")
    assert program.status_code == 405
    assert program.json()["error"] == "MethodNotAllowed"


async def test_a_dead_link_keeps_the_signed_in_header(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    assert "Log out" not in (await client.get("/no/such/page", headers=browser)).text
    await log_in(client, await create_user(session, resources, onboarded=True))
    page = await client.get("/no/such/page", headers=browser)
    assert page.status_code == 404
    assert "Log out" in page.text


async def test_catalogue_filters(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    await create_exercise(session, title="Python thing")
    await create_exercise(session, title="Hard thing", difficulty=5)
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    everything = await client.get("/exercises?language=python")
    assert "Python thing" in everything.text
    hard = await client.get("/exercises?difficulty=5")
    assert "Hard thing" in hard.text
    assert "Python thing" not in hard.text

    # Skills: any case, chosen from the skills that exist; a filter that cannot match says so.
    await create_exercise(session, title="Loop thing", skills=["zz-loops"])
    loops = await client.get("/exercises?skill=ZZ-Loops")
    assert loops.status_code == 200
    assert "Loop thing" in loops.text
    assert "Hard thing" not in loops.text
    assert '<option value="zz-loops" selected>' in loops.text
    unknown = await client.get("/exercises?skill=Basket+weaving")
    assert unknown.status_code == 200
    assert "No exercise practises “Basket weaving”" in unknown.text
    too_hard = await client.get("/exercises?difficulty=9")
    assert too_hard.status_code == 200
    assert "Difficulty goes from 1 to 5" in too_hard.text
    superscript = await client.get("/exercises", params={"difficulty": "²"})  # isdigit(), not int()
    assert superscript.status_code == 200
    assert "Difficulty goes from 1 to 5" in superscript.text
    assert "Python thing" in too_hard.text
    cobol = await client.get("/exercises?language=cobol")
    assert "no exercises in “cobol”" in cobol.text


def _titles(html: str) -> list[str]:
    return re.findall(r'<h2><a href="/exercises/[0-9a-f-]{36}">([^<]+)</a></h2>', html)


async def test_catalogue_marks_solved_and_skipped_searches_titles_and_sorts(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    tag = uuid.uuid4().hex[:8]
    zebra = await create_exercise(session, title=f"Zebra {tag}", difficulty=1, skills=["loops"])
    mango = await create_exercise(session, title=f"mango {tag}", difficulty=2, skills=["zz-a"])
    apple = await create_exercise(session, title=f"Apple {tag}", difficulty=3, skills=["lists"])
    await create_exercise(session, title="Unrelated exercise", difficulty=1)
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)

    # Solve one, skip another.
    await client.get(f"/exercises/{zebra.id}")
    passed = await client.post(
        f"/exercises/{zebra.id}/run", data={"code": ADD_SOLUTION}, headers=htmx(client)
    )
    assert 'data-status="passed"' in passed.text
    page = await client.get(f"/exercises/{apple.id}")
    await client.post(f"/exercises/{apple.id}/start", data={"csrf_token": csrf_from(page)})
    await client.post(f"/exercises/{apple.id}/skip", data={"csrf_token": csrf_from(page)})

    # A search in any case finds the titles that contain it, and only those.
    found = await client.get(f"/exercises?q={tag.upper()}")
    assert found.status_code == 200
    assert _titles(found.text) == [f"Zebra {tag}", f"mango {tag}", f"Apple {tag}"]
    assert f'value="{tag.upper()}"' in found.text
    item = r'<h2><a href="/exercises/([0-9a-f-]{36})">.*?</h2>\s*'
    mark = r'(?:<p class="work-mark[^>]*>.*?</svg> (\w+)</p>)?'
    marks = re.findall(item + mark, found.text, re.S)
    assert dict(marks) == {str(zebra.id): "Solved", str(mango.id): "", str(apple.id): "Skipped"}

    by_title = await client.get(f"/exercises?q={tag}&sort=title")
    assert _titles(by_title.text) == [f"Apple {tag}", f"mango {tag}", f"Zebra {tag}"]
    assert '<option value="title" selected>' in by_title.text
    by_skill = await client.get(f"/exercises?q={tag}&sort=skill")
    assert _titles(by_skill.text) == [f"Apple {tag}", f"Zebra {tag}", f"mango {tag}"]
    unknown = await client.get(f"/exercises?q={tag}&sort=popularity")
    assert unknown.status_code == 200
    assert "sorted by difficulty" in unknown.text
    assert _titles(unknown.text) == [f"Zebra {tag}", f"mango {tag}", f"Apple {tag}"]
    # Wildcards are searched for as text.
    assert _titles((await client.get("/exercises?q=%25")).text) == []


async def test_the_catalogue_pages_on_past_long_titles_in_any_script(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """Sorted by title, the next page's cursor carries the last title: 200 letters of Chinese
    made a cursor the page itself refused (404 "There is nothing at this address")."""
    tag = uuid.uuid4().hex[:8]
    for n in range(21):
        await create_exercise(session, title=f"{tag} {n:02d} " + "长" * 188)
    await log_in(client, await create_user(session, resources, onboarded=True))

    first = await client.get("/exercises", params={"q": tag, "sort": "title"})
    more = re.search(r'href="(/exercises\?[^"]*cursor=[^"]*)"', first.text)
    assert more is not None
    second = await client.get(unescape(more.group(1)))
    assert second.status_code == 200, second.text
    assert _titles(second.text) == [f"{tag} 20 " + "长" * 188]


# --- settings and admin ------------------------------------------------------------------------


async def test_settings_change_what_the_learner_practises(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)  # python, beginner
    await log_in(client, user)
    page = await client.get("/settings")
    assert "What you practise" in page.text
    assert '<option value="python" selected>' in page.text
    wanted = {
        "language": "javascript",
        "experience": "advanced",
        "learning_style": "challenges",
        "minutes_per_day": "45",
        "goals": "Build a web game",
    }
    posted = await post_form(client, "/settings", "/settings/learning", wanted)
    assert posted.status_code == 303  # POST-redirect-GET: a reload shows the page again
    assert posted.headers["location"].startswith("/settings?saved=learning")
    saved = await client.get(posted.headers["location"])
    # Not "tomorrow's": an exercise asked for today is chosen with them too.
    assert "the next exercise chosen for you follows these choices" in saved.text
    assert "tomorrow" not in saved.text
    assert '<option value="javascript" selected>' in saved.text
    profile = await session.scalar(select(LearnerProfile).where(LearnerProfile.user_id == user.id))
    assert profile is not None
    await session.refresh(profile)
    assert (profile.language, profile.experience, profile.learning_style) == (
        "javascript",
        "advanced",
        "challenges",
    )
    assert (profile.minutes_per_day, profile.goals) == (45, "Build a web game")

    for bad, field in (
        ({"minutes_per_day": "lots"}, "minutes_per_day"),
        ({"minutes_per_day": "9999"}, "minutes_per_day"),
        # Digits to str.isdigit() that int() refuses: a superscript, and thousands of them.
        ({"minutes_per_day": "²"}, "minutes_per_day"),
        ({"minutes_per_day": "9" * 5000}, "minutes_per_day"),
        ({"language": "cobol"}, "language"),
    ):
        refused = await post_form(client, "/settings", "/settings/learning", {**wanted, **bad})
        assert refused.status_code == 422
        assert f'id="f-{field}-error"' in refused.text
        if field == "minutes_per_day" and len(bad[field]) < 10:  # what was typed stays
            assert f'value="{bad[field]}"' in refused.text
        assert "Input should be" not in refused.text  # the app's words, not the framework's
    await session.refresh(profile)
    assert (profile.language, profile.minutes_per_day) == ("javascript", 45)


async def test_settings_hide_the_practice_card_until_onboarding_is_done(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    await log_in(client, user)
    assert "What you practise" not in (await client.get("/settings")).text
    refused = await post_form(
        client, "/settings", "/settings/learning", {"language": "python", "experience": "beginner"}
    )
    assert refused.status_code == 409
    assert "Complete onboarding first" in refused.text
    assert "/onboarding" in refused.text


async def test_settings_profile_password_and_deletion(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    bad = await post_form(
        client, "/settings", "/settings/profile", {"name": "Ada", "timezone": "Nowhere/Land"}
    )
    assert bad.status_code == 422
    assert 'id="f-timezone-error"' in bad.text
    posted = await post_form(
        client, "/settings", "/settings/profile", {"name": "Ada L.", "timezone": "Asia/Tokyo"}
    )
    assert posted.status_code == 303
    saved = await client.get(posted.headers["location"])
    assert "Your profile is saved." in saved.text
    # The form's address opened directly (a reload, a bookmark) is the page, not a JSON 405.
    for form in ("profile", "learning", "password", "delete"):
        direct = await client.get(f"/settings/{form}")
        assert direct.status_code == 303
        assert direct.headers["location"] == "/settings"
    row = (await session.execute(select(User.name, User.timezone).where(User.id == user.id))).one()
    assert tuple(row) == ("Ada L.", "Asia/Tokyo")

    wrong = await post_form(
        client,
        "/settings",
        "/settings/password",
        {
            "current_password": "not it",
            "new_password": NEW_PASSWORD,
            "password_confirm": NEW_PASSWORD,
        },
    )
    assert "current password is incorrect" in wrong.text
    changed = await post_form(
        client,
        "/settings",
        "/settings/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "password_confirm": NEW_PASSWORD,
        },
    )
    assert changed.status_code == 303
    assert "Your password has been changed" in (await client.get(changed.headers["location"])).text

    unconfirmed = await post_form(
        client, "/settings", "/settings/delete", {"password": NEW_PASSWORD, "confirm": "yes"}
    )
    assert "Type DELETE" in unconfirmed.text
    deleted = await post_form(
        client, "/settings", "/settings/delete", {"password": NEW_PASSWORD, "confirm": "DELETE"}
    )
    assert deleted.headers["location"] == "/?deleted=1"
    assert await session.scalar(select(User.id).where(User.id == user.id)) is None


async def test_the_settings_page_asks_for_the_password_at_a_logins_pace(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    resources.settings.login_limit_per_account_client = "2/minute"
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    for _ in range(2):
        wrong = await post_form(
            client, "/settings", "/settings/delete", {"password": "not it", "confirm": "DELETE"}
        )
        assert wrong.status_code == 422
    refused = await post_form(
        client,
        "/settings",
        "/settings/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
         "password_confirm": NEW_PASSWORD},
    )  # fmt: skip
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many wrong passwords" in refused.text


async def test_admin_page_is_for_admins(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    learner = await create_user(session, resources, onboarded=True)
    await create_exercise(session, title="Bank entry")
    await log_in(client, learner)
    refused = await client.get("/admin")
    assert refused.status_code == 403
    assert "for administrators" in refused.text
    assert "/admin" not in (await client.get("/dashboard")).text

    admin = await create_user(session, resources, onboarded=True, role="admin")
    client.cookies.clear()
    await log_in(client, admin)
    page = await client.get("/admin")
    assert page.status_code == 200
    assert "Bank entry" in page.text
    assert learner.email in page.text
    assert 'data-testid="sandbox-tier"' in page.text


async def test_admin_validates_an_exercise_in_the_sandbox(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session)
    admin = await create_user(session, resources, onboarded=True, role="admin")
    await log_in(client, admin)
    await client.get("/admin")
    response = await client.post(f"/admin/exercises/{exercise.id}/validate", headers=htmx(client))
    assert response.status_code == 200
    assert "valid" in response.text
    assert "problems" not in response.text
    page = await client.get("/admin")
    assert "checked" in page.text


async def test_chat_page_lists_conversations_and_loads_the_streaming_client(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    page = await client.get("/chat")
    assert page.status_code == 200
    assert 'data-chat="on"' in page.text
    assert 'id="conversation-list"' in page.text
    assert '<script src="/static/js/chat.js" defer>' in page.text
    script = await client.get("/static/js/chat.js")
    assert "text/event-stream" in script.text


async def test_progress_page_maps_a_year_and_says_what_each_achievement_counts(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    page = await client.get("/progress")
    assert page.status_code == 200
    # A year for wide screens and a quarter for phones; the stylesheet shows one.
    assert 'class="heatmap heatmap-year"' in page.text
    assert 'data-weeks="52"' in page.text
    assert 'class="heatmap heatmap-quarter"' in page.text
    summit = re.search(r"<strong>Summit</strong>.*?</li>", page.text, re.S)
    assert summit is not None
    assert "Hardest difficulty completed: 0 of 5" in summit.group(0)
    assert 'aria-label="Summit: hardest difficulty completed, 0 of 5"' in summit.group(0)


async def test_settings_show_todays_tutor_budget(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    page = await client.get("/settings")
    # A share of the learner's allowance, on their clock; dollars are for administrators.
    assert "0%</span> of your daily tutor allowance" in page.text
    assert "$" not in page.text
    assert "(Europe/Paris)" in page.text
    assert "/api/v1/progress/export?format=json" in page.text
    # The data export offers the tutor conversations too, and the link works.
    assert "your conversations with the tutor" in page.text
    link = "/api/v1/progress/export?format=conversations-csv"
    assert link in page.text
    download = await client.get(link)
    assert download.status_code == 200
    assert download.text.startswith("conversation_id,")


async def test_chat_page_shows_a_past_conversation(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session, title="Sum it")
    user = await create_user(session, resources, onboarded=True)
    await log_in(client, user)
    headers = {"X-CSRF-Token": client.cookies.get("koan_csrf") or ""}
    created = await client.post(
        "/api/v1/conversations", json={"exercise_id": str(exercise.id)}, headers=headers
    )
    assert created.status_code == 201, created.text
    conversation = created.json()["id"]
    asked = await client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"content": "Where do I start?"},
        headers=headers,
    )
    assert asked.status_code == 201, asked.text

    listing = await client.get("/chat")
    assert f'href="/chat?c={conversation}"' in listing.text
    opened = await client.get(f"/chat?c={conversation}")
    assert "Where do I start?" in opened.text
    assert opened.text.count('class="msg msg-') == 2
    assert f'data-conversation-id="{conversation}"' in opened.text
    stranger = await client.get("/chat?c=00000000-0000-0000-0000-000000000000")
    assert stranger.status_code == 404
