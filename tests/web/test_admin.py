"""The administrators' pages: accounts (search, pages, disabling), the exercise bank (search,
pages) and validating the whole bank as one job; and what a disabled account sees."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.exercises import admin as bank
from koan.models import Exercise, LLMCall, User
from koan.resources import Resources
from koan.users import admin
from tests.fixtures.factories import PASSWORD, bearer, create_exercise, create_user
from tests.security.test_authorization_matrix import _routes as every_route
from tests.web.conftest import csrf_from, log_in, post_form


@pytest.fixture(autouse=True)
def _pages(web_app: FastAPI) -> FastAPI:
    return web_app


async def test_a_disabled_account_is_told_on_the_login_form_and_its_pages_end(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    ada = await create_user(session, resources, onboarded=True)
    logged_in = await post_form(
        client, "/login", "/login", {"email": ada.email, "password": PASSWORD}
    )
    assert logged_in.status_code == 303
    assert (await client.get("/dashboard")).status_code == 200

    await admin.disable(session, resources, ada)
    # The page it had open: back to the login page (the session has ended) ...
    page = await client.get("/dashboard")
    assert page.status_code == 303
    assert page.headers["location"].startswith(("/login", "/api/v1/auth/resume"))
    resumed = await post_form(client, "/login", "/api/v1/auth/resume", {"next": "/dashboard"})
    assert resumed.headers["location"].startswith("/login")
    assert (await client.get("/dashboard")).status_code == 303
    # ... where the right password is told why, and a wrong one what anyone is told.
    refused = await post_form(
        client, "/login", "/login", {"email": ada.email, "password": PASSWORD}
    )
    assert refused.status_code == 403
    assert "This account has been disabled" in refused.text
    assert "koan_access" not in refused.headers.get("set-cookie", "")
    wrong = await post_form(
        client, "/login", "/login", {"email": ada.email, "password": "not the password!"}
    )
    assert wrong.status_code == 401
    assert "disabled" not in wrong.text


async def _admin_signed_in(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> User:
    ops = await create_user(session, resources, onboarded=True, role="admin", name="Ops")
    await log_in(client, ops)
    return ops


def _rows(page: httpx.Response, testid: str) -> list[str]:
    return re.findall(rf'<tr data-testid="{testid}">(.*?)</tr>', page.text, flags=re.S)


def _link(page: httpx.Response, label: str) -> str:
    match = re.search(rf'href="([^"]+)">{label}', page.text)
    assert match, f"no link {label!r}"
    return html.unescape(match.group(1))


# --- accounts -----------------------------------------------------------------------------------


async def test_accounts_are_searched_and_paged(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("koan.web.pages.admin.PAGE_SIZE", 2)
    await _admin_signed_in(client, session, resources)
    tag = uuid.uuid4().hex[:8]
    made = [
        await create_user(session, resources, name=f"Pupil {i} {tag}", email=f"p{i}-{tag}@ex.org")
        for i in range(5)
    ]
    await admin.disable(session, resources, made[3])

    first = await client.get("/admin", params={"q": tag.upper()})
    assert first.status_code == 200
    assert "5 accounts match, newest first." in first.text
    seen = [re.search(r"p\d-\w+@ex\.org", row).group(0) for row in _rows(first, "account-row")]  # type: ignore[union-attr]
    page = first
    while "Next 2 accounts" in page.text:
        page = await client.get(_link(page, "Next 2 accounts"))
        assert page.status_code == 200
        seen += [re.search(r"p\d-\w+@ex\.org", r).group(0) for r in _rows(page, "account-row")]  # type: ignore[union-attr]
        assert "First page" in page.text
    assert seen == [u.email for u in reversed(made)]  # newest first, each once
    assert f'value="{tag.upper()}"' in page.text  # the search stays in its box

    disabled = await client.get("/admin", params={"q": tag, "status": "disabled"})
    assert [made[3].email in row for row in _rows(disabled, "account-row")] == [True]
    assert "tag-bad" in disabled.text
    by_email = await client.get("/admin", params={"q": f"p2-{tag}@"})
    assert len(_rows(by_email, "account-row")) == 1
    odd = await client.get("/admin", params={"status": "sleeping", "q": tag})
    assert "Accounts are either active or disabled" in odd.text
    nothing = await client.get("/admin", params={"q": "no such person anywhere"})
    assert "No account matches." in nothing.text
    forged = await client.get("/admin", params={"cursor": "not-a-cursor"})
    assert forged.status_code == 400
    assert "start again without it" in forged.text


async def test_an_administrator_disables_and_enables_an_account_from_the_page(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    ops = await _admin_signed_in(client, session, resources)
    bob = await create_user(session, resources, onboarded=True)
    bob_session = await bearer(session, resources, bob)
    where = f"/admin?q={bob.email}"
    page = await client.get(where)
    assert f'aria-label="Disable {bob.email}"' in page.text
    assert "(you)" not in page.text  # only the administrator's own row says so

    done = await client.post(
        f"/admin/users/{bob.id}/disable",
        data={"csrf_token": csrf_from(page), "back": where + "#users"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == where + "#users"  # the page as it was
    assert (await client.get("/api/v1/users/me", headers=bob_session)).status_code == 401
    again = await client.get(where)
    assert f'aria-label="Enable {bob.email}"' in again.text
    enabled = await client.post(
        f"/admin/users/{bob.id}/enable",
        data={"csrf_token": csrf_from(again), "back": "https://evil.example/"},
    )
    assert enabled.headers["location"] == "/admin"  # never off the site
    await session.refresh(bob)
    assert not bob.disabled

    mine = await client.get(f"/admin?q={ops.email}")
    assert "(you)" in mine.text
    assert f'aria-label="Disable {ops.email}"' not in mine.text
    refused = await client.post(
        f"/admin/users/{ops.id}/disable", data={"csrf_token": csrf_from(mine)}
    )
    assert refused.status_code == 409
    assert "cannot disable your own account" in refused.text
    missing = await client.post(
        f"/admin/users/{uuid.uuid4()}/disable", data={"csrf_token": csrf_from(mine)}
    )
    assert missing.status_code == 404


# --- the exercise bank --------------------------------------------------------------------------


async def test_the_bank_is_searched_and_paged(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("koan.web.pages.admin.PAGE_SIZE", 2)
    await _admin_signed_in(client, session, resources)
    tag = uuid.uuid4().hex[:8]
    made = [
        await create_exercise(session, title=f"Sum {tag} {i}", slug=f"sum-{tag}-{i}")
        for i in range(3)
    ] + [await create_exercise(session, title="Other", slug=f"zz-{tag}", language="javascript")]

    first = await client.get("/admin", params={"eq": f"SUM {tag}"})
    assert "3 exercises match." in first.text
    assert len(_rows(first, "bank-row")) == 2
    second = await client.get(_link(first, "Next 2 exercises"))
    rows = _rows(first, "bank-row") + _rows(second, "bank-row")
    assert [e.slug in row for e, row in zip(made[:3], rows, strict=True)] == [True] * 3
    assert "Next 2 exercises" not in second.text
    assert f'value="SUM {tag}"' in second.text

    by_slug = await client.get("/admin", params={"eq": f"zz-{tag}"})
    assert [made[3].slug in row for row in _rows(by_slug, "bank-row")] == [True]
    # Both searches at once: paging one keeps the other.
    both = await client.get("/admin", params={"eq": tag, "q": "Ops"})
    following = _link(both, "Next 2 exercises")
    assert "q=Ops" in following
    assert "No exercise matches." in (await client.get("/admin?eq=nothing-like-it")).text


# --- validating the whole bank ------------------------------------------------------------------


async def _broken_bank(session: AsyncSession) -> tuple[Exercise, Exercise, Exercise]:
    good = await create_exercise(session, title="Fine one")
    wrong = await create_exercise(
        session, title="Wrong solution", solution="def add(a, b):\n    return 0\n"
    )
    easy = await create_exercise(
        session, title="Starter passes", starter_code="def add(a, b):\n    return a + b\n"
    )
    return good, wrong, easy


async def _bank_size(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Exercise)) or 0)


async def test_the_whole_bank_is_validated_as_one_job(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    ops = await _admin_signed_in(client, session, resources)
    good, wrong, easy = await _broken_bank(session)
    total = await _bank_size(session)
    page = await client.get("/admin")
    assert "The whole bank has not been validated yet." in page.text

    started = await client.post("/admin/validation", data={"csrf_token": csrf_from(page)})
    assert started.status_code == 303
    assert started.headers["location"] == "/admin#bank-validation"
    # (The test client returns once the job, run after the response, has finished.)
    done = await client.get("/admin")
    assert f"{total} of {total} validated, 2 with problems." in done.text
    assert f"by {ops.email}" in done.text
    failures = re.search(r'data-testid="bank-failures">(.*?)</ul>\s*</li>\s*</ul>', done.text, re.S)
    assert failures
    assert "Wrong solution" in failures.group(1)
    assert "reference solution does not pass" in failures.group(1)
    assert "Starter passes" in failures.group(1)
    assert "starter code passes every test" in failures.group(1)
    assert good.title not in failures.group(1)
    assert 'hx-trigger="every 2s"' not in done.text  # nothing to follow any more
    # Each exercise's own verdict is in the bank's table too.
    row = next(r for r in _rows(done, "bank-row") if good.slug in r)
    assert 'tag-ok">valid' in row
    row = next(r for r in _rows(done, "bank-row") if wrong.slug in r)
    assert 'tag-bad">problems' in row
    assert easy.slug in done.text


async def test_the_job_s_progress_survives_reloads_and_one_runs_at_a_time(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    ops = await _admin_signed_in(client, session, resources)
    await _broken_bank(session)
    total = await _bank_size(session)
    tasks = BackgroundTasks()  # the work the response would run after it is sent, held back
    await bank.start_bank_validation(session, resources, tasks, started_by=ops.email)

    hx = {"HX-Request": "true"}
    polled = await client.get("/admin/validation", headers=hx)
    assert polled.status_code == 200
    assert f"Validating:</strong>\n    \n    0 of {total} validated" in polled.text
    assert 'hx-get="/admin/validation" hx-trigger="every 2s"' in polled.text
    assert "Validate the whole bank</button>" not in polled.text
    reloaded = await client.get("/admin")
    assert f"0 of {total} validated" in reloaded.text
    navigated = await client.get("/admin/validation")  # opened as a page: the admin page
    assert navigated.headers["location"] == "/admin#bank-validation"

    twice = await client.post(
        "/admin/validation", headers={**hx, "X-CSRF-Token": csrf_from(reloaded)}
    )
    assert twice.status_code == 409
    assert f"already being validated: 0 of {total} done" in twice.text

    await tasks()
    finished = await client.get("/admin/validation", headers=hx)
    assert f"Finished:</strong>\n    \n    {total} of {total} validated, 2 with problems" in (
        finished.text
    )
    assert "hx-trigger" not in finished.text
    again = await client.post(
        "/admin/validation", headers={**hx, "X-CSRF-Token": csrf_from(reloaded)}
    )
    # Started again: the fragment answering the button shows the new job from its start ...
    assert again.status_code == 200
    assert f"0 of {total} validated" in again.text
    assert 'hx-trigger="every 2s"' in again.text
    # ... which has run by now (the test client waits for the work after the response).
    assert "Finished:" in (await client.get("/admin/validation", headers=hx)).text


async def test_a_job_whose_worker_stopped_shows_as_interrupted(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    ops = await _admin_signed_in(client, session, resources)
    await _broken_bank(session)
    await bank.start_bank_validation(session, resources, BackgroundTasks(), started_by=ops.email)
    # The worker died: its heartbeat stops and the lock runs out.
    await resources.cache.delete(bank.LOCK_KEY)

    page = await client.get("/admin")
    assert "Interrupted</strong> (the server running it stopped)" in page.text
    assert "Validate the whole bank</button>" in page.text  # it can be started again
    restarted = await client.post("/admin/validation", data={"csrf_token": csrf_from(page)})
    assert restarted.status_code == 303
    assert "Finished:" in (await client.get("/admin")).text


# --- who may use these pages ------------------------------------------------------------------


def _admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    found = sorted(
        {
            (method, path)
            for path, methods in every_route(app)
            if path.startswith("/admin")
            for method in methods - {"HEAD"}
        }
    )
    assert len(found) >= 6, found
    return found


async def test_every_admin_page_route_is_for_administrators_only(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, app: FastAPI
) -> None:
    bob = await create_user(session, resources, onboarded=True)
    exercise = await create_exercise(session)
    ids = {"user_id": bob.id, "exercise_id": exercise.id}
    routes = _admin_routes(app)

    for method, path in routes:  # anonymous: to the login page, nothing done
        r = await client.request(method, path.format(**ids))
        assert r.status_code in (303, 403), (method, path, r.status_code)
        if r.status_code == 303:
            assert r.headers["location"].startswith("/login"), (method, path)

    learner = await create_user(session, resources, onboarded=True)
    await log_in(client, learner)
    await client.get("/dashboard")
    headers = {"X-CSRF-Token": client.cookies.get("koan_csrf") or ""}
    for method, path in routes:
        r = await client.request(method, path.format(**ids), headers=headers)
        assert r.status_code == 403, (method, path, r.status_code)
        assert "for administrators" in r.text
    await session.refresh(bob)
    assert not bob.disabled
    assert await resources.cache.get(bank.JOB_KEY) is None


async def test_the_usage_per_day_counts_every_learners_calls(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # More learner-days than one page of the usage report holds: every one still counts.
    ops = await create_user(session, resources, onboarded=True, role="admin", name="Ops")
    today = datetime.now(UTC).date()
    learners = [await create_user(session, resources) for _ in range(18)]
    session.add_all(
        LLMCall(
            user_id=learner.id,
            purpose="chat",
            provider="openai",
            model="tutor-test",
            cost_usd=Decimal("0.010000"),
            input_tokens=100,
            output_tokens=10,
            day=today - timedelta(days=days_ago),
        )  # fmt: skip
        for learner in learners
        for days_ago in range(30)
    )
    await session.flush()
    await log_in(client, ops)
    page = (await client.get("/admin")).text
    rows = re.findall(
        r"<tr><td>(\d{4}-\d\d-\d\d)</td><td>(\d+)</td><td>(\d+)</td><td>\d+</td>"
        r"<td>\$([\d.]+)</td></tr>",
        page,
    )
    assert len(rows) == 30
    assert all((calls, people, cost) == ("18", "18", "0.1800") for _, calls, people, cost in rows)
