"""A teacher's journey in a real browser (Debian's Chromium, its headless shell, via Playwright)
against a live Koan server: create a class, invite by CSV, a learner joins from the mailed link,
an assignment is set, the learner fails twice and asks the tutor, the teacher sees them under
"needs help", opens the conversation, switches the tutor off for an exam, and exports the
gradebook.

Every page the journey visits is scanned with axe-core, and the browser must report no console
error and no failed request. Set KOAN_WEB_SCREENSHOTS=1 to refresh docs/screenshots/class-*.png.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import Exercise
from koan.resources import Resources
from tests.fixtures.smtp import SMTPServer
from tests.web.live import LiveServer
from tests.web.test_browser import (
    CHROMIUM,
    IN_CI,
    PageProblems,
    _new_page,
    axe_violations,
    browser,
    expect,
    live,
    log_in,
    make_user,
    problems,
    shot,
    sign_in,
)

# Fixtures: the module-scoped ones start this module's own server and browser.
__all__ = ["browser", "live", "problems"]
pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not IN_CI, reason="Chromium is not installed"
    ),
    # A group of its own: it starts its own server and browser anyway, so another worker can
    # run it beside the learner's browser tests.
    pytest.mark.xdist_group("browser-teacher"),
]


def python_exercise(live: LiveServer) -> tuple[str, str]:
    """(id, title) of a level-1 Python exercise of the built-in bank."""

    async def work(session: AsyncSession, res: Resources) -> tuple[str, str]:
        query = (
            select(Exercise.id, Exercise.title)
            .where(Exercise.language == "python", Exercise.difficulty == 1)
            .order_by(Exercise.slug)
            .limit(1)
        )
        row = (await session.execute(query)).one()
        return str(row[0]), str(row[1])

    return live.run(work)


def wall(moment: datetime, zone: str) -> str:
    """`moment` as a datetime-local field's value on the clock of `zone`."""
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


class Axe:
    """axe-core results of every page the journey visits."""

    def __init__(self) -> None:
        self.found: dict[str, list[dict[str, Any]]] = {}

    def scan(self, page: Any, name: str) -> None:
        expect(page.locator("main h1").first).to_be_visible()
        self.found[name] = axe_violations(page)


def test_a_teacher_runs_a_class(
    browser: Any, live: LiveServer, smtp_server: SMTPServer, problems: PageProblems
) -> None:
    teacher = _new_page(browser, live, problems, viewport={"width": 1280, "height": 900})
    learner = _new_page(browser, live, problems, viewport={"width": 1280, "height": 900})
    try:
        _journey(teacher, learner, live, smtp_server)
    finally:
        teacher.context.close()
        learner.context.close()
    assert not problems.errors, f"the browser reported errors: {problems.errors}"


def _journey(teacher: Any, learner: Any, live: LiveServer, smtp_server: SMTPServer) -> None:
    axe = Axe()
    ines = make_user(live, name="Ines Instructor")  # a new account: no learner interview yet
    lea = make_user(live, name="Lea Learner", onboarded=True, timezone="America/New_York")
    newcomer = f"newcomer-{uuid.uuid4().hex[:8]}@example.com"
    exercise_id, exercise_title = python_exercise(live)

    # The teacher finds Classes in the menu and creates a class in Paris time.
    log_in(teacher, ines.email)
    expect(teacher).to_have_url(re.compile(r"/onboarding"))
    teacher.get_by_role("navigation", name="Main").get_by_role("link", name="Classes").click()
    expect(teacher.get_by_role("heading", name="Classes", exact=True)).to_be_visible()
    axe.scan(teacher, "classes")
    teacher.get_by_label("Class name").fill("CS 101 · Autumn")
    teacher.get_by_label("The class's time zone").select_option("Europe/Paris")
    teacher.get_by_role("button", name="Create the class").click()
    expect(teacher.get_by_role("heading", name="CS 101 · Autumn", exact=True)).to_be_visible()
    code = teacher.get_by_test_id("join-code").inner_text()
    assert re.fullmatch(r"[A-Z0-9]{8}", code)
    expect(teacher.get_by_test_id("join-link")).to_have_text(f"{live.url}/classes/join?code={code}")
    class_url = teacher.url.split("?")[0]

    # Invitations from a CSV file: one has an account, the other not yet.
    roster = f"name,email\nLea Learner,{lea.email}\nNew Comer,{newcomer}\n".encode()
    teacher.get_by_label("Or upload a CSV file").set_input_files(
        files=[{"name": "roster.csv", "mimeType": "text/csv", "buffer": roster}]
    )
    teacher.get_by_role("button", name="Invite from the file").click()
    expect(teacher.locator("#invite-result")).to_contain_text("Invitations sent: 2")
    expect(teacher.get_by_role("table", name="Invitations sent")).to_contain_text(newcomer)
    axe.scan(teacher, "class overview")
    shot(teacher, "class-overview")

    # The learner opens the mailed link, sees what the teacher will see, and joins.
    mail = smtp_server.last_to(lea.email)
    assert "CS 101 · Autumn" in mail.subject
    sign_in(learner, lea.email)
    learner.goto(f"/classes/invite?token={mail.link_token('/classes/invite')}")
    expect(learner.get_by_role("heading", name="What your teacher will see")).to_be_visible()
    expect(learner.get_by_text("Taught by Ines Instructor.")).to_be_visible()
    axe.scan(learner, "join")
    shot(learner, "class-join")
    learner.get_by_role("button", name="Join CS 101 · Autumn").click()
    expect(learner.get_by_text("You have joined CS 101 · Autumn.")).to_be_visible()
    axe.scan(learner, "learner's class page")
    learner.get_by_role("link", name="Leave this class").click()  # asks first; not now
    expect(learner.get_by_role("button", name="Leave the class")).to_be_visible()
    axe.scan(learner, "leave")
    learner.get_by_role("link", name="Cancel").click()
    expect(learner.get_by_role("heading", name="What your teacher sees")).to_be_visible()

    # The teacher sets an assignment: one chosen exercise, open now, due in a week (Paris).
    teacher.get_by_role("navigation", name="Class pages").get_by_role(
        "link", name="Assignments"
    ).click()
    teacher.get_by_label("Title").fill("Week 1: functions")
    due = (datetime.now(UTC) + timedelta(days=7)).replace(second=0, microsecond=0)
    teacher.get_by_label("Due (Europe/Paris time)").fill(wall(due, "Europe/Paris"))
    teacher.locator(f'input[name="exercise_ids"][value="{exercise_id}"]').check()
    teacher.get_by_role("button", name="Set the assignment").click()
    expect(teacher.get_by_text("The assignment is set.")).to_be_visible()
    expect(teacher.locator(".assignment-list")).to_contain_text(exercise_title)
    axe.scan(teacher, "assignments")
    shot(teacher, "class-assignments")

    # Beside the daily exercise, with the due time on the learner's own clock.
    learner.goto("/dashboard")
    card = learner.locator(".class-work")
    expect(card).to_contain_text("Week 1: functions")
    local_due = due.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M")
    expect(card).to_contain_text(f"Due {local_due} (America/New_York)")
    axe.scan(learner, "learner dashboard")
    shot(learner, "class-learner-dashboard")

    # The learner fails twice, then asks the tutor.
    card.get_by_role("link", name=exercise_title).click()
    expect(learner).to_have_url(re.compile(f"/exercises/{exercise_id}$"))
    for _ in range(2):
        with learner.expect_response(re.compile(r"/run$")):
            learner.get_by_role("button", name="Run tests").click()
        expect(learner.locator("#results .result")).to_have_attribute(
            "data-status", re.compile(r"failed|error")
        )
    learner.get_by_label("Your question").fill("I am stuck: why does my function return None?")
    learner.get_by_role("button", name="Send").click()
    expect(learner.locator(".msg-assistant").last).to_have_attribute("data-complete", "true")

    # The teacher sees them under "needs help", with the reason, and opens the conversation.
    teacher.goto(f"{class_url}/needs-help")
    entry = teacher.get_by_test_id("needs-help-entry").first
    expect(entry).to_contain_text("Lea Learner")
    expect(entry).to_contain_text(f"2 failed attempts at {exercise_title} in the last hour")
    axe.scan(teacher, "needs help")
    shot(teacher, "class-needs-help")
    entry.get_by_role("link", name="See Lea Learner's work and tutor conversations").click()
    expect(teacher.get_by_test_id("submission")).to_have_count(2)
    axe.scan(teacher, "learner's work")
    teacher.get_by_role("region", name="Tutor conversations").get_by_role("link").first.click()
    expect(teacher.locator(".msg-user")).to_contain_text("why does my function return None?")
    expect(teacher.locator(".msg-assistant")).to_have_count(1)
    axe.scan(teacher, "conversation")
    shot(teacher, "class-conversation")

    # The roster, sorted by attempts.
    teacher.get_by_role("navigation", name="Class pages").get_by_role("link", name="Roster").click()
    teacher.get_by_role("link", name="Attempts").click()
    expect(teacher.get_by_role("columnheader", name="Attempts")).to_have_attribute(
        "aria-sort", "ascending"
    )
    expect(teacher.get_by_role("table")).to_contain_text("Lea Learner")
    axe.scan(teacher, "roster")
    shot(teacher, "class-roster")

    # An exam: the tutor is off from now for two hours, and the learner is told why.
    teacher.get_by_role("navigation", name="Class pages").get_by_role("link", name="Tutor").click()
    now = datetime.now(UTC)
    teacher.get_by_label("Off between two times (an exam)").check()
    teacher.get_by_label("Exam starts (Europe/Paris time)").fill(
        wall(now - timedelta(minutes=1), "Europe/Paris")
    )
    teacher.get_by_label("Exam ends (Europe/Paris time)").fill(
        wall(now + timedelta(hours=2), "Europe/Paris")
    )
    teacher.get_by_label("Why it is off (learners see this)").fill("Midterm exam")
    teacher.get_by_role("button", name="Save the tutor's settings").click()
    expect(teacher.get_by_text("Saved: the tutor follows these settings")).to_be_visible()
    expect(teacher.get_by_label("Off between two times (an exam)")).to_be_checked()
    axe.scan(teacher, "tutor")
    shot(teacher, "class-tutor")
    learner.get_by_label("Your question").fill("Can you check my loop?")
    learner.get_by_role("button", name="Send").click()
    expect(learner.locator("#tutor")).to_contain_text("Midterm exam")
    # Opened again, the exercise says so before any question, and offers no chat box.
    learner.reload()
    expect(learner.get_by_test_id("tutor-off")).to_contain_text("Midterm exam")
    expect(learner.get_by_label("Your question")).to_have_count(0)

    # The gradebook, and its export.
    teacher.get_by_role("navigation", name="Class pages").get_by_role(
        "link", name="Gradebook"
    ).click()
    expect(teacher.get_by_role("table")).to_contain_text("Attempted")
    axe.scan(teacher, "gradebook")
    shot(teacher, "class-gradebook")
    with teacher.expect_download() as download:
        teacher.get_by_role("link", name="Export CSV").click()
    assert download.value.suggested_filename == "cs-101-autumn-gradebook.csv"
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))
    assert rows == [
        ["name", "email", "Week 1: functions"],
        ["Lea Learner", lea.email, "attempted"],
    ]

    for name, path in (("per exercise", "/exercises"), ("settings", "/settings"),
                       ("delete", "/delete")):  # fmt: skip
        teacher.goto(class_url + path)
        axe.scan(teacher, name)
    learner.goto(f"/classes/join?code={code}")
    axe.scan(learner, "join by code")
    bad = {name: v for name, v in axe.found.items() if v}
    assert not bad, bad

    # On a phone no class page scrolls sideways (wide tables scroll inside their box).
    teacher.set_viewport_size({"width": 375, "height": 740})
    for path in ("", "/roster", "/assignments", "/gradebook", "/needs-help", "/tutor"):
        teacher.goto(class_url + path)
        overflow = teacher.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path or '/'} scrolls sideways on a phone ({overflow}px)"
