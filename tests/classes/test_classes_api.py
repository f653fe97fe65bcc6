"""Classes: creating, joining, leaving, the roster and invitations, and who may do what."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import ClassMembership, Submission
from koan.resources import Resources
from tests.classes.helpers import Course, create_course
from tests.fixtures.factories import (
    ADD_SOLUTION,
    PASSWORD,
    bearer,
    create_exercise,
    create_user,
)
from tests.fixtures.smtp import SMTPServer


async def test_a_verified_user_creates_a_class_and_becomes_its_instructor(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    h = await bearer(session, resources, user)
    r = await client.post(
        "/api/v1/classes", json={"name": "Intro", "timezone": "Europe/Paris"}, headers=h
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["role"] == "instructor"
    assert len(body["join_code"]) == 8
    assert body["join_link"].endswith(f"/classes/join?code={body['join_code']}")
    assert body["tutor"]["strictness"] is None  # the server's default
    mine = await client.get("/api/v1/classes", headers=h)
    assert [c["name"] for c in mine.json()["items"]] == ["Intro"]


async def test_an_unverified_user_cannot_create_a_class(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, verified=False)
    r = await client.post(
        "/api/v1/classes", json={"name": "X"}, headers=await bearer(session, resources, user)
    )
    assert r.status_code == 403
    assert r.json()["error"] == "EmailNotVerified"


async def test_with_class_creators_admins_only_administrators_create_classes(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    resources.settings = resources.settings.model_copy(update={"class_creators": "admins"})
    learner = await create_user(session, resources)
    admin = await create_user(session, resources, role="admin")
    refused = await client.post(
        "/api/v1/classes", json={"name": "X"}, headers=await bearer(session, resources, learner)
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "Forbidden"
    allowed = await client.post(
        "/api/v1/classes", json={"name": "X"}, headers=await bearer(session, resources, admin)
    )
    assert allowed.status_code == 201


async def test_before_joining_a_learner_sees_what_the_teacher_will_see(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0)
    newcomer = await create_user(session, resources)
    h = await bearer(session, resources, newcomer)
    r = await client.get("/api/v1/classes/preview", params={"code": course.code.lower()}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "CS 101"
    assert body["instructors"] == ["Ines Instructor"]
    assert body["already_member"] is False
    seen = " ".join(body["teacher_sees"])
    assert "submissions" in seen
    assert "tutor conversations" in seen
    assert "private" in seen
    # Previewing does not join.
    assert (await client.get(f"/api/v1/classes/{course.id}", headers=h)).status_code == 404


async def test_joining_with_a_wrong_code_is_a_404(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    h = await bearer(session, resources, await create_user(session, resources))
    r = await client.post("/api/v1/classes/join", json={"code": "NOPE2345"}, headers=h)
    assert r.status_code == 404
    assert r.json()["error"] == "NoSuchClass"


async def test_join_codes_cannot_be_found_by_trying_them(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    resources.settings.class_code_limit = "3/minute"
    course = await create_course(client, session, resources, learners=0)
    h = await bearer(session, resources, await create_user(session, resources))
    other = await bearer(session, resources, await create_user(session, resources))
    tried = [
        await client.post("/api/v1/classes/join", json={"code": "NOPE2345"}, headers=h),
        await client.get("/api/v1/classes/preview", params={"code": "NOPE2346"}, headers=h),
        await client.post("/api/v1/classes/join", json={"code": "NOPE2347"}, headers=h),
    ]
    refused = await client.post("/api/v1/classes/join", json={"code": "NOPE2348"}, headers=h)
    # Past the limit the right code is refused as well: the answer tells nothing.
    right = await client.post("/api/v1/classes/join", json={"code": course.code}, headers=h)
    looked = await client.get("/api/v1/classes/preview", params={"code": course.code}, headers=h)
    elsewhere = await client.post("/api/v1/classes/join", json={"code": course.code}, headers=other)

    assert [r.status_code for r in tried] == [404, 404, 404]
    assert refused.status_code == 429
    assert refused.json()["error"] == "RateLimited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert right.status_code == 429
    assert looked.status_code == 429
    assert elsewhere.status_code == 200


async def test_a_learner_sees_the_class_but_not_its_code_settings_or_roster(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1)
    h = course.headers["learner0"]
    r = await client.get(f"/api/v1/classes/{course.id}", headers=h)
    assert r.status_code == 200
    assert r.json()["role"] == "learner"
    assert r.json()["join_code"] is None
    assert r.json()["tutor"] is None
    roster = await client.get(f"/api/v1/classes/{course.id}/members", headers=h)
    assert roster.status_code == 403
    assert roster.json()["error"] == "Forbidden"


async def test_one_account_is_a_learner_in_one_class_and_instructor_of_another(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1)
    learner = course.headers["learner0"]
    own = await client.post("/api/v1/classes", json={"name": "My club"}, headers=learner)
    assert own.status_code == 201
    roles = {
        c["name"]: c["role"]
        for c in (await client.get("/api/v1/classes", headers=learner)).json()["items"]
    }
    assert roles == {"CS 101": "learner", "My club": "instructor"}


async def test_leaving_takes_the_learner_out_of_the_roster_but_keeps_their_work(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1)
    learner, h = course.learners[0], course.headers["learner0"]
    exercise = await create_exercise(session)
    sub = await client.post(
        f"/api/v1/exercises/{exercise.id}/submissions", json={"code": ADD_SOLUTION}, headers=h
    )
    assert sub.status_code == 201
    left = await client.post(f"/api/v1/classes/{course.id}/leave", headers=h)
    assert left.status_code == 200, left.text
    roster = await client.get(
        f"/api/v1/classes/{course.id}/members", headers=course.headers["instructor"]
    )
    assert learner.id not in {uuid.UUID(m["user_id"]) for m in roster.json()["items"]}
    kept = await session.scalar(
        select(func.count()).select_from(Submission).where(Submission.user_id == learner.id)
    )
    assert kept == 1
    assert (await client.get(f"/api/v1/classes/{course.id}", headers=h)).status_code == 404


async def test_a_learner_cannot_leave_while_the_tutor_is_off_for_an_exam(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # Out of the class is out of its tutor policy: leaving, asking, and joining again would
    # get round the exam.
    course = await create_course(client, session, resources, learners=1, ta=True)
    now = resources.clock.now()
    window = await client.patch(
        f"/api/v1/classes/{course.id}",
        json={"tutor": {"off_from": (now - timedelta(minutes=5)).isoformat(),
                        "off_until": (now + timedelta(minutes=5)).isoformat()}},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert window.status_code == 200, window.text
    leave = f"/api/v1/classes/{course.id}/leave"

    during = await client.post(leave, headers=course.headers["learner0"])
    ta_leaves = await client.post(leave, headers=course.headers["ta"])
    resources.clock.advance(timedelta(minutes=6))
    after = await client.post(leave, headers=course.headers["learner0"])

    assert during.status_code == 409, during.text
    assert during.json()["error"] == "ExamInProgress"
    assert ta_leaves.status_code == 200, ta_leaves.text
    assert after.status_code == 200, after.text


async def test_the_only_instructor_cannot_delete_their_account(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1)
    delete = {"password": PASSWORD}
    mine = course.headers["instructor"]
    r = await client.request("DELETE", "/api/v1/users/me", headers=mine, json=delete)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "LastInstructor"
    assert "CS 101" in r.json()["detail"]
    # The class still has its instructor; once another member is one, the account can go.
    assert (await client.get(f"/api/v1/classes/{course.id}", headers=mine)).status_code == 200
    learner = course.learners[0]
    promoted = await client.patch(
        f"/api/v1/classes/{course.id}/members/{learner.id}",
        json={"role": "instructor"},
        headers=mine,
    )
    assert promoted.status_code == 200, promoted.text
    r = await client.request("DELETE", "/api/v1/users/me", headers=mine, json=delete)
    assert r.status_code == 200, r.text
    roster = await client.get(
        f"/api/v1/classes/{course.id}/members", headers=course.headers["learner0"]
    )
    assert roster.status_code == 200, roster.text
    assert [m["role"] for m in roster.json()["items"]] == ["instructor"]


async def test_the_only_instructor_cannot_leave(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0)
    r = await client.post(
        f"/api/v1/classes/{course.id}/leave", headers=course.headers["instructor"]
    )
    assert r.status_code == 409
    assert r.json()["error"] == "LastInstructor"


async def test_an_instructor_hands_the_class_to_a_ta_made_instructor_and_leaves(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0, ta=True)
    assert course.ta is not None
    teacher = course.headers["instructor"]
    members = f"/api/v1/classes/{course.id}/members"

    by_ta = await client.patch(
        f"{members}/{course.instructor.id}", json={"role": "learner"}, headers=course.headers["ta"]
    )
    promoted = await client.patch(
        f"{members}/{course.ta.id}", json={"role": "instructor"}, headers=teacher
    )
    left = await client.post(f"/api/v1/classes/{course.id}/leave", headers=teacher)
    # The new instructor's role is not changed by another instructor here.
    demote = await client.patch(
        f"{members}/{course.ta.id}", json={"role": "ta"}, headers=course.headers["ta"]
    )

    assert by_ta.status_code == 403, by_ta.text
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "instructor"
    assert left.status_code == 200, left.text
    assert demote.status_code == 409, demote.text


async def test_deleting_a_class_keeps_every_learners_work(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1)
    exercise = await create_exercise(session)
    h = course.headers["learner0"]
    await client.post(
        f"/api/v1/exercises/{exercise.id}/submissions", json={"code": "x = 1"}, headers=h
    )
    r = await client.delete(f"/api/v1/classes/{course.id}", headers=course.headers["instructor"])
    assert r.status_code == 200, r.text
    assert (
        await session.scalar(
            select(func.count())
            .select_from(ClassMembership)
            .where(ClassMembership.class_id == course.id)
        )
        == 0
    )
    kept = await session.scalar(
        select(func.count())
        .select_from(Submission)
        .where(Submission.user_id == course.learners[0].id)
    )
    assert kept == 1
    me = await client.get("/api/v1/users/me", headers=h)
    assert me.status_code == 200


async def test_invites_from_a_pasted_list_are_mailed_with_a_link_that_joins(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    smtp_server: SMTPServer,
) -> None:
    course = await create_course(client, session, resources, learners=1)
    tag = uuid.uuid4().hex[:8]
    invitee = await create_user(session, resources, email=f"ann-{tag}@example.com")
    member_email = course.learners[0].email
    pasted = f"Ann <ANN-{tag}@example.com>, bob-{tag}@example.com\n{member_email}; not-an-email@"
    r = await client.post(
        f"/api/v1/classes/{course.id}/invites",
        json={"emails": pasted},
        headers=course.headers["instructor"],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["invited"] == [f"ann-{tag}@example.com", f"bob-{tag}@example.com"]
    assert body["already_members"] == [member_email]
    assert body["invalid"] == ["not-an-email@"]
    again = await client.post(
        f"/api/v1/classes/{course.id}/invites",
        json={"emails": f"ann-{tag}@example.com"},
        headers=course.headers["instructor"],
    )
    assert again.json()["already_invited"] == [f"ann-{tag}@example.com"]

    mail = smtp_server.last_to(invitee.email)
    assert "CS 101" in mail.subject
    token = mail.link_token("/classes/invite")
    # The link is for Ann: someone else cannot use it.
    other = await bearer(session, resources, await create_user(session, resources))
    stolen = await client.post(
        "/api/v1/classes/invites/accept", json={"token": token}, headers=other
    )
    assert stolen.status_code == 404
    h = await bearer(session, resources, invitee)
    accepted = await client.post("/api/v1/classes/invites/accept", json={"token": token}, headers=h)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["role"] == "learner"
    listed = await client.get(
        f"/api/v1/classes/{course.id}/invites", headers=course.headers["instructor"]
    )
    statuses = {i["email"]: i["status"] for i in listed.json()["items"]}
    assert statuses == {f"ann-{tag}@example.com": "accepted", f"bob-{tag}@example.com": "pending"}


async def test_one_account_sends_a_bounded_number_of_invitations_across_its_classes(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """An invitation carries text its sender chose to any address: no account may use the
    server to mail in bulk, however many classes it makes."""
    resources.settings.class_invite_limit = "3/day"
    course = await create_course(client, session, resources, learners=0)
    teacher = course.headers["instructor"]
    tag = uuid.uuid4().hex[:8]
    first = await client.post(
        f"/api/v1/classes/{course.id}/invites",
        json={"emails": f"a-{tag}@example.com b-{tag}@example.com"},
        headers=teacher,
    )
    # Addresses invited already are not mailed again, so they cost nothing.
    repeated = await client.post(
        f"/api/v1/classes/{course.id}/invites", json={"emails": f"a-{tag}@example.com"},
        headers=teacher,
    )  # fmt: skip
    other = await client.post("/api/v1/classes", json={"name": "Spam 1"}, headers=teacher)
    invites = f"/api/v1/classes/{other.json()['id']}/invites"
    refused = await client.post(
        invites, json={"emails": f"c-{tag}@example.com d-{tag}@example.com"}, headers=teacher
    )
    listed = await client.get(invites, headers=teacher)
    last = await client.post(invites, json={"emails": f"c-{tag}@example.com"}, headers=teacher)

    assert first.status_code == 200
    assert repeated.json()["already_invited"] == [f"a-{tag}@example.com"]
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"] == "RateLimited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert listed.json()["items"] == []  # nothing was invited, nothing will be mailed
    assert last.status_code == 200
    assert last.json()["invited"] == [f"c-{tag}@example.com"]


async def test_an_invitation_brings_back_no_one_who_left_until_a_new_one_is_sent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    smtp_server: SMTPServer,
) -> None:
    course = await create_course(client, session, resources, learners=0)
    guest = await create_user(session, resources, email=f"gus-{uuid.uuid4().hex[:8]}@example.com")
    h, teacher = await bearer(session, resources, guest), course.headers["instructor"]
    invites = f"/api/v1/classes/{course.id}/invites"
    await client.post(invites, json={"emails": guest.email}, headers=teacher)
    token = smtp_server.last_to(guest.email).link_token("/classes/invite")
    accept = "/api/v1/classes/invites/accept"
    assert (await client.post(accept, json={"token": token}, headers=h)).status_code == 200
    # Following the link again as a member changes nothing.
    assert (await client.post(accept, json={"token": token}, headers=h)).status_code == 200
    removed = await client.delete(
        f"/api/v1/classes/{course.id}/members/{guest.id}", headers=teacher
    )
    assert removed.status_code == 200, removed.text

    reused = await client.post(accept, json={"token": token}, headers=h)
    again = await client.post(invites, json={"emails": guest.email}, headers=teacher)
    fresh = smtp_server.last_to(guest.email).link_token("/classes/invite")
    rejoined = await client.post(accept, json={"token": fresh}, headers=h)

    assert reused.status_code == 409, reused.text
    assert reused.json()["error"] == "InviteUsed"
    assert again.json()["invited"] == [guest.email]
    assert fresh != token
    assert rejoined.status_code == 200, rejoined.text


async def test_a_new_join_code_keeps_out_a_removed_learner_who_kept_the_old_one(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=2, ta=True)
    kicked, stays = course.learners
    teacher, h = course.headers["instructor"], course.headers["learner0"]
    removed = await client.delete(
        f"/api/v1/classes/{course.id}/members/{kicked.id}", headers=teacher
    )
    assert removed.status_code == 200
    renew = f"/api/v1/classes/{course.id}/join-code"
    by_ta = await client.post(renew, headers=course.headers["ta"])
    by_learner = await client.post(renew, headers=course.headers["learner1"])
    renewed = await client.post(renew, headers=teacher)

    old = await client.post("/api/v1/classes/join", json={"code": course.code}, headers=h)
    looked = await client.get("/api/v1/classes/preview", params={"code": course.code}, headers=h)
    new_code = renewed.json()["join_code"]
    newcomer = await bearer(session, resources, await create_user(session, resources))
    joined = await client.post("/api/v1/classes/join", json={"code": new_code}, headers=newcomer)
    members = await client.get(f"/api/v1/classes/{course.id}/members", headers=teacher)

    assert by_ta.status_code == 403
    assert by_learner.status_code == 403
    assert renewed.status_code == 200, renewed.text
    assert new_code != course.code
    assert renewed.json()["join_link"].endswith(f"?code={new_code}")
    assert old.status_code == 404
    assert old.json()["error"] == "NoSuchClass"
    assert looked.status_code == 404
    assert joined.status_code == 200
    ids = {m["user_id"] for m in members.json()["items"]}
    assert str(stays.id) in ids
    assert str(kicked.id) not in ids


async def upload_roster(client: httpx.AsyncClient, course: Course, content: str) -> httpx.Response:
    return await client.post(
        f"/api/v1/classes/{course.id}/invites/csv",
        files={"file": ("roster.csv", content.encode(), "text/csv")},
        headers=course.headers["instructor"],
    )


async def test_invites_from_a_csv_upload(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    smtp_server: SMTPServer,
) -> None:
    course = await create_course(client, session, resources, learners=0)
    tag = uuid.uuid4().hex[:8]
    content = f"name,email\nCy,cy-{tag}@example.com\nDee,dee-{tag}@example.com\n"
    r = await upload_roster(client, course, content)
    assert r.status_code == 200, r.text
    assert r.json()["invited"] == [f"cy-{tag}@example.com", f"dee-{tag}@example.com"]
    assert smtp_server.last_to(f"dee-{tag}@example.com").link_token("/classes/invite")


async def test_a_ta_manages_the_roster_but_not_the_settings_or_the_class(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1, ta=True)
    ta = course.headers["ta"]
    assert (await client.get(f"/api/v1/classes/{course.id}/members", headers=ta)).status_code == 200
    settings = await client.patch(
        f"/api/v1/classes/{course.id}", json={"tutor": {"off": True}}, headers=ta
    )
    assert settings.status_code == 403
    deleted = await client.delete(f"/api/v1/classes/{course.id}", headers=ta)
    assert deleted.status_code == 403
    instructor_gone = await client.delete(
        f"/api/v1/classes/{course.id}/members/{course.instructor.id}", headers=ta
    )
    assert instructor_gone.status_code == 403
    removed = await client.delete(
        f"/api/v1/classes/{course.id}/members/{course.learners[0].id}", headers=ta
    )
    assert removed.status_code == 200, removed.text


async def test_instructors_change_the_tutor_settings_in_the_class_time_zone(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0, timezone="Europe/Paris")
    r = await client.patch(
        f"/api/v1/classes/{course.id}",
        json={
            "tutor": {
                "strictness": "hints",
                "instructions": "We have not covered recursion yet.",
                "avoid": ["recursion", "list comprehension"],
                "off_from": "2026-12-10T09:00:00",
                "off_until": "2026-12-10T11:00:00",
                "off_reason": "Exam in progress",
                "learner_daily_budget_usd": "0.10",
                "class_daily_cap_usd": "5",
            }
        },
        headers=course.headers["instructor"],
    )
    assert r.status_code == 200, r.text
    tutor = r.json()["tutor"]
    assert tutor["strictness"] == "hints"
    assert tutor["avoid"] == ["recursion", "list comprehension"]
    assert tutor["off_from"].startswith("2026-12-10T08:00:00")  # 09:00 in Paris is 08:00 UTC
    bad = await client.patch(
        f"/api/v1/classes/{course.id}",
        json={"tutor": {"strictness": "anything"}},
        headers=course.headers["instructor"],
    )
    assert bad.status_code == 422


@pytest.mark.parametrize("role", ["instructor", "ta", "learner"])
async def test_members_of_class_a_see_nothing_of_class_b(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, app: FastAPI, role: str
) -> None:
    a = await create_course(client, session, resources, learners=1, ta=True)
    b = await create_course(client, session, resources, learners=1)
    h = a.headers["learner0" if role == "learner" else role]
    for path in (
        f"/api/v1/classes/{b.id}",
        f"/api/v1/classes/{b.id}/members",
        f"/api/v1/classes/{b.id}/assignments",
        f"/api/v1/classes/{b.id}/invites",
    ):
        r = await client.get(path, headers=h)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"] == "NotFound"


async def test_a_csv_upload_with_bare_carriage_returns_reads_them_as_line_ends(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    smtp_server: SMTPServer,
) -> None:
    course = await create_course(client, session, resources, learners=0)
    tag = uuid.uuid4().hex[:8]

    r = await upload_roster(client, course, f"email\rcr-{tag}@example.com\r")

    assert r.status_code == 200, r.text
    assert r.json()["invited"] == [f"cr-{tag}@example.com"]


async def test_a_csv_upload_csv_cannot_read_is_a_400(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0)

    r = await upload_roster(client, course, "x" * 200_000)

    assert r.status_code == 400, r.text
    assert r.json()["error"] == "BadCSV"


async def test_a_class_name_of_spaces_alone_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0)
    h = course.headers["instructor"]
    made = await client.post("/api/v1/classes", json={"name": "   "}, headers=h)
    assert made.status_code == 422, made.text
    assert [f["field"] for f in made.json()["fields"]] == ["name"]
    renamed = await client.patch(f"/api/v1/classes/{course.id}", json={"name": " \t "}, headers=h)
    assert renamed.status_code == 422, renamed.text
    assert renamed.json()["fields"][0]["type"] == "string_too_short"
    kept = await client.get(f"/api/v1/classes/{course.id}", headers=h)
    assert kept.json()["name"] == "CS 101"
    trimmed = await client.post("/api/v1/classes", json={"name": "  Intro  "}, headers=h)
    assert trimmed.json()["name"] == "Intro"


async def test_words_to_avoid_are_kept_once_each_and_of_bounded_length(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0)
    url, h = f"/api/v1/classes/{course.id}", course.headers["instructor"]
    r = await client.patch(
        url,
        json={
            "tutor": {"avoid": ["Loops", "", "loops", " recursion ", "  ", "LOOPS", "recursion"]}
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["tutor"]["avoid"] == ["Loops", "recursion"]
    too_long = await client.patch(url, json={"tutor": {"avoid": ["x" * 201]}}, headers=h)
    assert too_long.status_code == 422, too_long.text
    assert too_long.json()["fields"][0]["field"] == "tutor.avoid.0"
    kept = await client.get(url, headers=h)
    assert kept.json()["tutor"]["avoid"] == ["Loops", "recursion"]


async def test_an_invitation_expires_and_a_new_one_can_be_sent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    smtp_server: SMTPServer,
) -> None:
    course = await create_course(client, session, resources, learners=0)
    guest = await create_user(session, resources, email=f"eve-{uuid.uuid4().hex[:8]}@example.com")
    h, teacher = await bearer(session, resources, guest), course.headers["instructor"]
    invites = f"/api/v1/classes/{course.id}/invites"
    await client.post(invites, json={"emails": guest.email}, headers=teacher)
    token = smtp_server.last_to(guest.email).link_token("/classes/invite")
    resources.clock.advance(timedelta(days=resources.settings.class_invite_ttl_days, seconds=1))
    # Sessions opened now, after the clock moved.
    h, teacher = (
        await bearer(session, resources, guest),
        await bearer(session, resources, course.instructor),
    )

    expired = await client.post("/api/v1/classes/invites/accept", json={"token": token}, headers=h)
    again = await client.post(invites, json={"emails": guest.email}, headers=teacher)
    fresh = smtp_server.last_to(guest.email).link_token("/classes/invite")
    joined = await client.post("/api/v1/classes/invites/accept", json={"token": fresh}, headers=h)

    assert expired.status_code == 400, expired.text
    assert expired.json()["error"] == "InviteExpired"
    assert "Ask the class's teacher for a new one" in expired.json()["detail"]
    assert again.json()["invited"] == [guest.email]
    assert joined.status_code == 200, joined.text
