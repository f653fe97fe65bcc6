"""The rules of classes: who may do what, joining, invitations and class assignments (the
dashboards are in `dashboard.py`, the tutor's policy and budgets in `tutor.py`)."""

from __future__ import annotations

import csv
import io
import random
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast, get_args
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive import service as adaptive
from koan.adaptive.selection import Candidate, choose_exercise
from koan.classes import repository
from koan.classes.schemas import (
    TEACHER_SEES,
    AssignmentLanguage,
    ClassAssignmentCreate,
    ClassAssignmentOut,
    ClassCreate,
    ClassOut,
    ClassPreview,
    ClassUpdate,
    ExerciseChoice,
    GeneratedExerciseOut,
    InviteOut,
    InviteResult,
    ItemOut,
    ItemStatus,
    MemberOut,
    ReviewStatus,
    TutorOut,
)
from koan.clock import Clock
from koan.common.schemas import EARLIEST_YEAR, LATEST_YEAR
from koan.errors import BadRequest, Conflict, Forbidden, KoanError, NotFound, PayloadTooLarge
from koan.exercises import repository as exercises
from koan.mail.sender import Mail, MailQueue
from koan.models import (
    ClassAssignment,
    ClassAssignmentItem,
    ClassExerciseReview,
    ClassInvite,
    ClassMembership,
    ClassRoom,
    Exercise,
    User,
)
from koan.models.classes import STAFF_ROLES
from koan.onboarding import service as profiles
from koan.resources import Resources
from koan.security import hash_token

# Unambiguous when read aloud or copied from a projector (no 0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
MAX_INVITES = 500
MAX_CSV_BYTES = 512 * 1024
NO_CLASS = "There is no class with this id."


# -- times --------------------------------------------------------------------------------


class NonexistentTime(KoanError, status=400):
    """A wall time the class's clocks skip (the hour lost when summer time starts); `field`
    names the time refused, `reason` says why without naming it (a form shows it beside it)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _skipped(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The wall times the zone's clocks jump from and to, if `moment` (naive) falls between."""
    earlier = moment.replace(tzinfo=zone, fold=0)
    if earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == moment:
        return None
    before = earlier.utcoffset() or timedelta(0)
    after = moment.replace(tzinfo=zone, fold=1).utcoffset() or timedelta(0)
    # The change happened between these two instants: find its second.
    low = (moment - after).replace(tzinfo=UTC)
    high = (moment - before).replace(tzinfo=UTC)
    while high - low > timedelta(seconds=1):
        middle = (low + (high - low) / 2).replace(microsecond=0)
        if middle.astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return (high + before).replace(tzinfo=None), (high + after).replace(tzinfo=None)


def in_zone(moment: datetime, zone: str, field: str = "time") -> datetime:
    """`moment` as an aware UTC time: a naive one is read as wall time in `zone`. A wall time
    the clocks skip (summer time starting) is refused (400 NonexistentTime); one they show
    twice (summer time ending) is the first of the two, in summer time. A time that has no UTC
    equivalent Python can hold (the first or last hours of its calendar) is a 400."""
    try:
        if moment.tzinfo is None:
            place = ZoneInfo(zone)
            if skipped := _skipped(moment, place):
                start, end = skipped
                raise NonexistentTime(
                    field,
                    f"{moment:%Y-%m-%d %H:%M} does not exist in {zone} (the clocks skip from "
                    f"{start:%H:%M} to {end:%H:%M} that day). Choose a time outside the change, "
                    f"such as {end:%H:%M}.",
                )
            moment = moment.replace(tzinfo=place, fold=0)
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise BadRequest(
            f"Dates must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}.",
            code="InvalidDates",
        ) from exc


def local_label(moment: datetime, zone: str) -> str:
    """'2026-12-07 23:59 (Europe/Paris)': a time as the reader's clock shows it (in UTC when
    the reader's clock cannot hold it)."""
    try:
        return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} ({zone})"
    except OverflowError:
        return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} (UTC)"


def exam_window_open(room: ClassRoom, now: datetime) -> bool:
    """Whether `now` is inside the class's window with the tutor off (an exam)."""
    start, end = room.tutor_off_from, room.tutor_off_until
    return start is not None and end is not None and start <= now < end


# -- access -------------------------------------------------------------------------------


@dataclass
class Membership:
    room: ClassRoom
    role: str

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


async def member_of(
    session: AsyncSession,
    user: User,
    class_id: uuid.UUID,
    *,
    staff: bool = False,
    instructor: bool = False,
) -> Membership:
    """The caller's place in the class. Outsiders get 404 (a class they are not in does not
    exist for them); a learner asking for staff pages, or a TA for an instructor's, gets 403."""
    both = await repository.class_and_membership(session, class_id, user.id)
    room, found = both if both is not None else (None, None)
    if room is None or found is None:
        raise NotFound(NO_CLASS)
    if instructor and found.role != "instructor":
        raise Forbidden("Only the class's instructors may do this.")
    if staff and found.role not in STAFF_ROLES:
        raise Forbidden("Only the class's instructors and TAs may see this.")
    return Membership(room, found.role)


async def skips_onboarding(session: AsyncSession, user: User) -> bool:
    """Administrators and instructors are not sent through the learner interview."""
    if user.is_admin:
        return True
    return any(role == "instructor" for _, role in await repository.classes_of(session, user.id))


# -- classes ------------------------------------------------------------------------------


def join_link(res: Resources, room: ClassRoom) -> str:
    return f"{res.settings.base_url.rstrip('/')}/classes/join?code={room.join_code}"


def tutor_out(room: ClassRoom) -> TutorOut:
    return TutorOut(
        strictness=room.tutor_strictness,
        instructions=room.tutor_instructions,
        avoid=list(room.tutor_avoid or []),
        off=room.tutor_off,
        off_from=room.tutor_off_from,
        off_until=room.tutor_off_until,
        off_reason=room.tutor_off_reason,
        learner_daily_budget_usd=room.learner_daily_budget_usd,
        class_daily_cap_usd=room.class_daily_cap_usd,
    )


async def describe(
    session: AsyncSession, res: Resources, room: ClassRoom, role: str, *, counts: bool = True
) -> ClassOut:
    staff = role in STAFF_ROLES
    return ClassOut(
        id=room.id,
        name=room.name,
        role=role,
        timezone=room.timezone,
        starts_at=room.starts_at,
        ends_at=room.ends_at,
        join_code=room.join_code if staff else None,
        join_link=join_link(res, room) if staff else None,
        tutor=tutor_out(room) if staff else None,
        members=await repository.member_count(session, room.id) if staff and counts else None,
    )


async def _new_code(session: AsyncSession) -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if not await repository.code_taken(session, code):
            return code


async def create_class(
    session: AsyncSession, res: Resources, user: User, data: ClassCreate
) -> ClassRoom:
    """A new class with `user` as its instructor."""
    if res.settings.class_creators == "admins" and not user.is_admin:
        raise Forbidden("On this server only administrators may create classes.")
    room = ClassRoom(
        name=data.name,
        join_code=await _new_code(session),
        timezone=data.timezone,
        starts_at=in_zone(data.starts_at, data.timezone, "starts_at") if data.starts_at else None,
        ends_at=in_zone(data.ends_at, data.timezone, "ends_at") if data.ends_at else None,
        tutor_avoid=[],
        created_by=user.id,
    )
    _check_dates(room)
    session.add(room)
    await session.flush()
    session.add(ClassMembership(class_id=room.id, user_id=user.id, role="instructor"))
    await session.flush()
    return room


def _check_dates(room: ClassRoom) -> None:
    if room.starts_at and room.ends_at and room.ends_at <= room.starts_at:
        raise BadRequest("The class must end after it starts.", code="InvalidDates")
    if (room.tutor_off_from is None) != (room.tutor_off_until is None):
        raise BadRequest("An exam window needs both off_from and off_until.", code="InvalidDates")
    if room.tutor_off_from and room.tutor_off_until and room.tutor_off_until <= room.tutor_off_from:
        raise BadRequest("The exam window must end after it starts.", code="InvalidDates")


async def my_classes(session: AsyncSession, res: Resources, user: User) -> list[ClassOut]:
    return [
        await describe(session, res, room, role, counts=False)
        for room, role in await repository.classes_of(session, user.id)
    ]


async def update_class(session: AsyncSession, member: Membership, data: ClassUpdate) -> ClassRoom:
    room = member.room
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and data.name:
        room.name = data.name
    if "timezone" in changes and data.timezone:
        room.timezone = data.timezone
    if "starts_at" in changes:
        room.starts_at = (
            in_zone(data.starts_at, room.timezone, "starts_at") if data.starts_at else None
        )
    if "ends_at" in changes:
        room.ends_at = in_zone(data.ends_at, room.timezone, "ends_at") if data.ends_at else None
    if data.tutor is not None:
        tutor = data.tutor
        given = tutor.model_dump(exclude_unset=True)
        if "strictness" in given:
            room.tutor_strictness = tutor.strictness
        if "instructions" in given:
            room.tutor_instructions = (tutor.instructions or "").strip()
        if "avoid" in given:
            room.tutor_avoid = distinct_words(tutor.avoid or [])
        if "off" in given:
            room.tutor_off = bool(tutor.off)
        if "off_from" in given:
            room.tutor_off_from = (
                in_zone(tutor.off_from, room.timezone, "off_from") if tutor.off_from else None
            )
        if "off_until" in given:
            room.tutor_off_until = (
                in_zone(tutor.off_until, room.timezone, "off_until") if tutor.off_until else None
            )
        if "off_reason" in given:
            room.tutor_off_reason = tutor.off_reason or ""
        if "learner_daily_budget_usd" in given:
            room.learner_daily_budget_usd = tutor.learner_daily_budget_usd
        if "class_daily_cap_usd" in given:
            room.class_daily_cap_usd = tutor.class_daily_cap_usd
    _check_dates(room)
    await session.flush()
    return room


def distinct_words(words: Iterable[str]) -> list[str]:
    """The words to avoid, each once (whatever its case, as first written), blanks dropped."""
    seen: dict[str, str] = {}
    for word in words:
        if word:
            seen.setdefault(word.casefold(), word)
    return list(seen.values())


async def new_join_code(session: AsyncSession, member: Membership) -> ClassRoom:
    """Replace the class's join code: the old one (and the join link with it) joins nobody
    any more, so a learner who was removed, or anyone the code reached, cannot come back
    with it. Members and pending invitations are untouched."""
    room = member.room
    room.join_code = await _new_code(session)
    await session.flush()
    return room


async def delete_class(session: AsyncSession, member: Membership) -> None:
    """The class, its roster and its assignments go; learners' work stays theirs."""
    await repository.delete_class(session, member.room.id)


# -- joining and leaving ------------------------------------------------------------------


def _normal_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).upper()


CODE_GUESSES = "Too many wrong join codes; check the code with your teacher and try later."


async def _class_by_code(session: AsyncSession, res: Resources, user: User, code: str) -> ClassRoom:
    """The class with this join code. Wrong codes count per account, so nobody can find
    classes by trying codes (the right one still joins, once the limit has room)."""
    rule, ids = res.settings.class_code_limit, ("class-code", str(user.id))
    await res.limiter.check(rule, *ids, detail=CODE_GUESSES)
    room = await repository.class_by_code(session, _normal_code(code))
    if room is None:
        await res.limiter.hit(rule, *ids, detail=CODE_GUESSES)
        raise NotFound("No class has this code; check it with your teacher.", code="NoSuchClass")
    return room


async def preview(session: AsyncSession, res: Resources, user: User, code: str) -> ClassPreview:
    return await preview_of(session, user, await _class_by_code(session, res, user, code))


async def preview_of(session: AsyncSession, user: User, room: ClassRoom) -> ClassPreview:
    """Who teaches the class and what they see of a learner's work."""
    staff = await repository.members(session, room.id, role="instructor")
    return ClassPreview(
        id=room.id,
        name=room.name,
        instructors=[u.name for _, u in staff],
        teacher_sees=list(TEACHER_SEES),
        already_member=await repository.membership(session, room.id, user.id) is not None,
    )


async def _join(
    session: AsyncSession, room: ClassRoom, user: User, now: datetime
) -> ClassMembership:
    existing = await repository.membership(session, room.id, user.id)
    if existing is not None:
        return existing
    return await repository.join(session, room.id, user.id, role="learner", at=now)


async def join(session: AsyncSession, res: Resources, user: User, code: str) -> Membership:
    room = await _class_by_code(session, res, user, code)
    joined = await _join(session, room, user, res.clock.now())
    return Membership(room, joined.role)


INVITE_EXPIRED = (
    "This invitation has expired. Ask the class's teacher for a new one, or for the class's "
    "join code."
)


def _invite_expired(res: Resources, invite: ClassInvite) -> bool:
    """A pending invitation's link lasts KOAN_CLASS_INVITE_TTL_DAYS from when it was sent."""
    lifetime = timedelta(days=res.settings.class_invite_ttl_days)
    return invite.status == "pending" and invite.created_at + lifetime <= res.clock.now()


async def _invite_for(
    session: AsyncSession, res: Resources, user: User, token: str
) -> tuple[ClassInvite, ClassRoom]:
    invite = await repository.invite_by_token(session, hash_token(token))
    if invite is None or invite.email != user.email:
        raise NotFound(
            "This invitation is not for this account: log in with the address it was sent to.",
            code="NoSuchInvite",
        )
    room = await repository.class_by_id(session, invite.class_id)
    if room is None:  # pragma: no cover - the invite goes with its class
        raise NotFound(NO_CLASS)
    if _invite_expired(res, invite):
        raise BadRequest(INVITE_EXPIRED, code="InviteExpired")
    if (
        invite.status == "accepted"
        and await repository.membership(session, room.id, user.id) is None
    ):
        # Used once, by a member who has since left or been removed: a link in an old mail
        # does not bring them back.
        raise Conflict(
            "This invitation has been used. Ask the class's teacher for a new one, or for the "
            "class's join code.",
            code="InviteUsed",
        )
    return invite, room


async def invite_preview(
    session: AsyncSession, res: Resources, user: User, token: str
) -> ClassPreview:
    """The class an invitation mailed to the caller is for, before they accept it."""
    _, room = await _invite_for(session, res, user, token)
    return await preview_of(session, user, room)


async def accept_invite(
    session: AsyncSession, res: Resources, user: User, token: str
) -> Membership:
    invite, room = await _invite_for(session, res, user, token)
    now = res.clock.now()
    joined = await _join(session, room, user, now)
    if invite.status != "accepted":
        invite.status = "accepted"
        invite.accepted_at = now
        await session.flush()
    return Membership(room, joined.role)


async def leave(session: AsyncSession, member: Membership, user: User, *, now: datetime) -> None:
    """Out of the roster and gradebook; the learner's own work and history stay. Not during an
    exam window: a learner out of the class is out of its tutor policy too, and could ask the
    tutor about the exam's exercises, then join again."""
    # The class as it is once held: an exam saved as the learner leaves is seen.
    room = await repository.hold_class(session, member.room.id)
    if room is None:
        raise NotFound(NO_CLASS)
    if member.role == "learner" and exam_window_open(room, now):
        until = local_label(room.tutor_off_until, room.timezone)  # type: ignore[arg-type]
        raise Conflict(
            f"The class's tutor is off for an exam until {until}: you can leave after that.",
            code="ExamInProgress",
        )
    if member.role == "instructor":
        instructors = await repository.members(session, member.room.id, role="instructor")
        if len(instructors) <= 1:
            raise Conflict(
                "You are the class's only instructor: make another member an instructor "
                "first, or delete the class.",
                code="LastInstructor",
            )
    await repository.remove_member(session, member.room.id, user.id)


async def check_account_closable(session: AsyncSession, user: User) -> None:
    """An account may be deleted unless it is the only instructor of a class: like leaving,
    that would leave the class (its learners, its tutor's policy) with nobody to run it."""
    await repository.hold_classes_taught_by(session, user.id)
    classes = await repository.sole_instructor_of(session, user.id)
    if classes:
        names = ", ".join(room.name for room in classes)
        raise Conflict(
            f"You are the only instructor of {names}: make another member an instructor "
            "first, or delete the class, then delete your account.",
            code="LastInstructor",
        )


# -- roster -------------------------------------------------------------------------------


async def roster_members(session: AsyncSession, member: Membership) -> list[MemberOut]:
    return [
        MemberOut(
            user_id=u.id,
            name=u.name,
            email=u.email,
            role=m.role,
            joined_at=m.joined_at,
        )  # fmt: skip
        for m, u in await repository.members(session, member.room.id)
    ]


_SEPARATORS = re.compile(r"[\s,;]+")


def emails_from_text(raw: str) -> list[str]:
    """Addresses from a pasted list (commas, semicolons, spaces or lines), "Name <a@b>" too."""
    found: list[str] = []
    for part in _SEPARATORS.split(raw.replace("<", " ").replace(">", " ")):
        if "@" in part:
            found.append(part.strip().strip("\"'"))
    return found


def emails_from_upload(raw: bytes) -> list[str]:
    """Addresses from an uploaded CSV file (`raw` read up to MAX_CSV_BYTES + 1 bytes)."""
    if len(raw) > MAX_CSV_BYTES:
        raise PayloadTooLarge(f"The CSV file is limited to {MAX_CSV_BYTES // 1024} KB.")
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest("The CSV file must be UTF-8 text.", code="BadCSV") from exc
    return emails_from_csv(content)


def emails_from_csv(content: str) -> list[str]:
    """Addresses from a CSV file: every cell that looks like one (a header row is skipped)."""
    found: list[str] = []
    try:
        # newline="": csv reads the line ends itself (a bare carriage return included).
        for row in csv.reader(io.StringIO(content, newline="")):
            found.extend(cell.strip() for cell in row if "@" in cell)
    except csv.Error as exc:
        raise BadRequest(f"The CSV file could not be read: {exc}.", code="BadCSV") from exc
    return found


def _split_valid(candidates: Iterable[str]) -> tuple[list[str], list[str]]:
    valid: list[str] = []
    invalid: list[str] = []
    for raw in candidates:
        try:
            email = validate_email(raw, check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            invalid.append(raw[:320])
            continue
        if email not in valid:
            valid.append(email)
    return valid, invalid


def invite_mail(*, class_name: str, teacher: str, link: str) -> tuple[str, str]:
    return (
        f"{teacher} invites you to the class {class_name} on Koan",
        f'Hello,\n\n{teacher} invites you to join the class "{class_name}" on Koan, a coding '
        f"tutor with daily exercises.\n\nTo join, open this link (sign up first with this "
        f"address if you have no account yet):\n\n{link}\n\nBefore you join you will see what "
        "your teacher can see of your work. If you did not expect this mail, ignore it.\n",
    )


@dataclass(frozen=True)
class InviteMailed:
    """Records on the invitation whether its mail went out (MailQueue outcome)."""

    invite_id: uuid.UUID
    token_hash: str
    clock: Clock

    async def __call__(self, session: AsyncSession, delivered: bool) -> None:
        await repository.record_invite_mail(
            session, self.invite_id, self.token_hash,
            status="sent" if delivered else "failed", at=self.clock.now(),
        )  # fmt: skip


TOO_MANY_INVITES = (
    "You have sent as many invitations as one account may for now: share the class's join "
    "code or link instead, or invite these addresses later."
)


async def invite(
    session: AsyncSession,
    res: Resources,
    member: Membership,
    inviter: User,
    addresses: Sequence[str],
    mail: MailQueue,
) -> InviteResult:
    """Invite each new address: the mails with their links go out after the response (each
    invitation records whether its mail was sent). Members and invitations already sent are
    left as they are; an invitation whose mail failed or whose link has expired is sent again
    with a new link."""
    valid, invalid = _split_valid(addresses)
    if len(valid) > MAX_INVITES:
        raise BadRequest(f"At most {MAX_INVITES} invitations at once.", code="TooManyInvites")
    if not valid and not invalid:
        raise BadRequest("No email addresses found.", code="NoAddresses")
    room = member.room
    accounts = await repository.users_by_emails(session, valid)
    existing = {i.email: i for i in await repository.invites(session, room.id)}
    result = InviteResult(invited=[], already_members=[], already_invited=[], invalid=invalid)
    outgoing: list[tuple[ClassInvite, str]] = []
    for email in valid:
        account = accounts.get(email)
        if account is not None and await repository.membership(session, room.id, account.id):
            result.already_members.append(email)
            continue
        token = secrets.token_urlsafe(32)
        found = existing.get(email)
        if found is not None:
            # Pending with its mail sent: the link is on its way. Accepted by someone who is
            # no longer a member (above), a mail that never arrived or a link that has
            # expired: a new link and mail.
            if (
                found.status == "pending"
                and found.mail_status != "failed"
                and not _invite_expired(res, found)
            ):
                result.already_invited.append(email)
                continue
            found.token_hash, found.mail_status, found.mailed_at = hash_token(token), "queued", None
            found.invited_by, found.created_at = inviter.id, res.clock.now()
            found.status, found.accepted_at = "pending", None
        else:
            found = ClassInvite(
                class_id=room.id, email=email, token_hash=hash_token(token),
                invited_by=inviter.id, created_at=res.clock.now(), mail_status="queued",
            )  # fmt: skip
            session.add(found)
        outgoing.append((found, token))
        result.invited.append(email)
    if outgoing:
        await res.limiter.hit(
            res.settings.class_invite_limit,
            "class-invites",
            str(inviter.id),
            cost=len(outgoing),
            detail=TOO_MANY_INVITES,
        )
    await session.flush()
    # Queued only once the invitations are written: a request that fails before this point
    # mails nothing (and the queue runs only after a response that committed).
    base = res.settings.base_url.rstrip("/")
    for row, token in outgoing:
        subject, body = invite_mail(
            class_name=room.name, teacher=inviter.name, link=f"{base}/classes/invite?token={token}"
        )
        mail.send(
            Mail(to=row.email, subject=subject, body=body),
            outcome=InviteMailed(row.id, row.token_hash, res.clock),
        )
    return result


async def invites_of(session: AsyncSession, member: Membership) -> list[InviteOut]:
    """Invitations sent for the class, and whether they were accepted."""
    return [InviteOut.model_validate(i) for i in await repository.invites(session, member.room.id)]


async def remove_member(session: AsyncSession, member: Membership, target_id: uuid.UUID) -> None:
    await repository.hold_class(session, member.room.id)
    target = await repository.membership(session, member.room.id, target_id)
    if target is None:
        raise NotFound("This account is not a member of the class.")
    if target.role in STAFF_ROLES and member.role != "instructor":
        raise Forbidden("Only instructors may remove an instructor or a TA.")
    if target.role == "instructor":
        await _keep_an_instructor(session, member.room.id)
    await repository.remove_member(session, member.room.id, target_id)


async def _keep_an_instructor(session: AsyncSession, class_id: uuid.UUID) -> None:
    """Refuse to take the class's last instructor away (the class's row is held)."""
    instructors = await repository.members(session, class_id, role="instructor")
    if len(instructors) <= 1:
        raise Conflict(
            "A class keeps at least one instructor: make another member an instructor first, "
            "or delete the class.",
            code="LastInstructor",
        )


async def change_role(
    session: AsyncSession, member: Membership, target_id: uuid.UUID, role: str
) -> ClassMembership:
    await repository.hold_class(session, member.room.id)
    target = await repository.membership(session, member.room.id, target_id)
    if target is None:
        raise NotFound("This account is not a member of the class.")
    if target.role == "instructor":
        raise Conflict("An instructor's role is not changed here.", code="IsInstructor")
    target.role = role
    await session.flush()
    return target


async def add_member(
    session: AsyncSession, res: Resources, room: ClassRoom, user: User, role: str
) -> ClassMembership:
    """Put an account in a class with a role (the command line's `koan classes add`). The
    class's only instructor keeps the role, as everywhere else (409 LastInstructor)."""
    await repository.hold_class(session, room.id)
    found = await repository.membership(session, room.id, user.id)
    if found is not None and found.role == "instructor" and role != "instructor":
        await _keep_an_instructor(session, room.id)
    if found is None:
        found = ClassMembership(
            class_id=room.id, user_id=user.id, role=role, joined_at=res.clock.now()
        )
        session.add(found)
    else:
        found.role = role
    await session.flush()
    return found


# -- class assignments --------------------------------------------------------------------


async def create_assignment(
    session: AsyncSession,
    res: Resources,
    member: Membership,
    user: User,
    data: ClassAssignmentCreate,
) -> ClassAssignment:
    room = member.room
    opens_at = in_zone(data.opens_at, room.timezone, "opens_at")
    due_at = in_zone(data.due_at, room.timezone, "due_at")
    if due_at <= opens_at:
        raise BadRequest("The due time must be after the opening time.", code="InvalidDates")
    adaptive_kind = data.exercise_ids is None
    # An exercise chosen twice is set once.
    ids = list(dict.fromkeys(data.exercise_ids or []))
    assignment = ClassAssignment(
        class_id=room.id,
        title=data.title,
        kind="adaptive" if adaptive_kind else "exercises",
        skill=data.skill,
        level=data.level,
        count=data.count or len(ids),
        language=data.language,
        opens_at=opens_at,
        due_at=due_at,
        created_by=user.id,
        created_at=res.clock.now(),
    )
    if adaptive_kind:
        pool = await _pool(session, data.language or "python", data.skill or "", data.level or 1)
        if not pool:
            raise BadRequest(
                f"The bank has no {data.language or 'python'} exercise of skill '{data.skill}' "
                f"at level {data.level}.",
                code="NoExercises",
            )
    session.add(assignment)
    await session.flush()
    if not adaptive_kind:
        # What every learner may see, or what this class's instructor approved for it: a
        # generated exercise still private to its requester is not the class's to set.
        shared = await exercises.shared_ids(session, ids)
        approved = {
            i for i, r in (await repository.exercise_reviews(session, room.id)).items()
            if r.status == "approved"
        }  # fmt: skip
        known = await exercises.titles(session, [i for i in ids if i in shared | approved])
        missing = [str(i) for i in ids if i not in known]
        if missing:
            raise NotFound(f"There is no exercise with id {', '.join(missing)}.")
        for position, exercise_id in enumerate(ids):
            session.add(
                ClassAssignmentItem(
                    class_assignment_id=assignment.id, class_id=room.id,
                    exercise_id=exercise_id, position=position,
                )
            )  # fmt: skip
        await session.flush()
    return assignment


async def delete_assignment(
    session: AsyncSession, member: Membership, assignment_id: uuid.UUID
) -> None:
    found = await repository.class_assignment(session, member.room.id, assignment_id)
    if found is None:
        raise NotFound("There is no class assignment with this id.")
    await session.delete(found)
    await session.flush()


async def generated_exercises(
    session: AsyncSession, member: Membership
) -> list[GeneratedExerciseOut]:
    """Exercises the model wrote for the class's learners, with the instructor's decision on
    each (those an administrator shared with everyone need none)."""
    learners = {u.id: u.email for u in await repository.learners(session, member.room.id)}
    reviews = await repository.exercise_reviews(session, member.room.id)
    return [
        _generated_out(e, learners.get(e.owner_id) if e.owner_id else None, reviews.get(e.id))
        for e in await exercises.written_for(session, list(learners))
    ]


def _generated_out(
    exercise: Exercise, written_for: str | None, review: ClassExerciseReview | None
) -> GeneratedExerciseOut:
    return GeneratedExerciseOut(
        id=exercise.id, slug=exercise.slug, title=exercise.title, language=exercise.language,
        difficulty=exercise.difficulty, written_for=written_for,
        status=cast(ReviewStatus, review.status) if review else "pending",
        decided_at=review.decided_at if review else None,
    )  # fmt: skip


async def review_generated(
    session: AsyncSession,
    res: Resources,
    member: Membership,
    reviewer: User,
    exercise_id: uuid.UUID,
    *,
    approve: bool,
) -> GeneratedExerciseOut:
    """The instructor shares an exercise the model wrote for one of the class's learners with
    the class (approve), or keeps it its requester's alone (reject). Anybody else's is not
    the class's to decide on: 404, as if it did not exist."""
    room = member.room
    exercise = await exercises.exercise_by_id(session, exercise_id)
    if exercise is None:
        raise NotFound("There is no exercise with this id.")
    if exercise.source != "generated" or exercise.approved_at is not None:
        raise Conflict(
            "This exercise is shared with every learner already: only exercises written for "
            "one of the class's learners are reviewed here.",
            code="AlreadyShared",
        )
    reviews = await repository.exercise_reviews(session, room.id)
    review = reviews.get(exercise.id)
    learners = {u.id: u.email for u in await repository.learners(session, room.id)}
    if exercise.owner_id not in learners and review is None:
        raise NotFound("There is no exercise with this id.")
    if review is None:
        review = ClassExerciseReview(class_id=room.id, exercise_id=exercise.id, status="")
        session.add(review)
    review.status = "approved" if approve else "rejected"
    review.decided_by, review.decided_at = reviewer.id, res.clock.now()
    await session.flush()
    owner = learners.get(exercise.owner_id) if exercise.owner_id else None
    return _generated_out(exercise, owner, review)


async def assignable_exercises(
    session: AsyncSession, class_id: uuid.UUID | None = None
) -> list[ExerciseChoice]:
    """The exercises a class assignment may set, in every language: those every learner may
    see (none generated for somebody and not approved), and those the class approved."""
    bank = [
        e
        for language in get_args(AssignmentLanguage)
        for e in await exercises.candidates(session, language=language, viewer=None)
    ]
    if class_id is not None:
        reviews = await repository.exercise_reviews(session, class_id)
        approved = [i for i, r in reviews.items() if r.status == "approved"]
        bank += await exercises.by_ids(session, approved)
    return [
        ExerciseChoice(
            id=e.id,
            slug=e.slug,
            title=e.title,
            language=e.language,
            difficulty=e.difficulty,
            skills=list(e.skills),
        )  # fmt: skip
        for e in bank
    ]


async def _pool(session: AsyncSession, language: str, skill: str, level: int) -> list[Exercise]:
    # Only exercises every learner may see: none generated for somebody and not approved.
    bank = await exercises.candidates(session, language=language, viewer=None)
    return [e for e in bank if skill in e.skills and e.difficulty == level]


async def _pick_for(
    session: AsyncSession, res: Resources, assignment: ClassAssignment, user: User
) -> list[ClassAssignmentItem]:
    """The adaptive engine's `count` picks of the assignment's skill and level for `user`."""
    pool = await _pool(
        session, assignment.language or "python", assignment.skill or "", assignment.level or 1
    )
    if not pool:
        return []
    profile = await profiles.profile_of(session, user)
    ratings = await adaptive.learner_ratings(session, user, profile)
    now = res.clock.now()
    rng = random.Random(f"{user.id}:{assignment.id}")
    candidates = [
        Candidate(id=str(e.id), skills=tuple(e.skills), item=adaptive.item_of(e)) for e in pool
    ]
    picked: list[ClassAssignmentItem] = []
    while candidates and len(picked) < assignment.count:
        choice = choose_exercise(
            candidates, ratings, now=now, target=res.settings.adaptive_target_success,
            rng=rng, experience=profile.experience,
        )  # fmt: skip
        candidates = [c for c in candidates if c.id != choice.candidate.id]
        item = ClassAssignmentItem(
            class_assignment_id=assignment.id, class_id=assignment.class_id,
            exercise_id=uuid.UUID(choice.candidate.id), user_id=user.id, position=len(picked),
        )  # fmt: skip
        session.add(item)
        picked.append(item)
    await session.flush()
    return picked


def item_status(stat: exercises.PairWork | None, due_at: datetime) -> ItemStatus:
    if stat is None:
        return "not_started"
    if stat.first_pass_at is not None:
        return "late" if stat.first_pass_at > due_at else "passed"
    return "attempted"


def overall_status(statuses: Sequence[ItemStatus]) -> ItemStatus:
    """An assignment's status from its exercises': passed only when every one is."""
    if statuses and all(s in ("passed", "late") for s in statuses):
        return "late" if "late" in statuses else "passed"
    if any(s != "not_started" for s in statuses):
        return "attempted"
    return "not_started"


@dataclass
class _Learning:
    room: ClassRoom
    assignments: list[ClassAssignment]
    items: dict[uuid.UUID, list[ClassAssignmentItem]] = field(default_factory=dict)


async def learner_assignments(
    session: AsyncSession, res: Resources, user: User, *, class_id: uuid.UUID | None = None
) -> list[ClassAssignmentOut]:
    """The learner's class assignments (opened ones), with due times in their own time zone
    and each exercise's status; adaptive picks are made on first sight."""
    now = res.clock.now()
    out: list[ClassAssignmentOut] = []
    for room, role in await repository.classes_of(session, user.id):
        if role != "learner" or (class_id is not None and room.id != class_id):
            continue
        assignments = [
            a for a in await repository.class_assignments(session, room.id) if a.opens_at <= now
        ]
        if not assignments:
            continue
        by_assignment: dict[uuid.UUID, list[ClassAssignmentItem]] = {}
        for item in await repository.items(session, room.id, user_id=user.id):
            by_assignment.setdefault(item.class_assignment_id, []).append(item)
        for a in assignments:
            if a.kind == "adaptive" and a.id not in by_assignment and a.due_at > now:
                try:
                    async with session.begin_nested():
                        by_assignment[a.id] = await _pick_for(session, res, a, user)
                except IntegrityError:
                    # Another request made this learner's picks at the same moment: theirs.
                    mine = await repository.items(session, room.id, user_id=user.id)
                    by_assignment[a.id] = [i for i in mine if i.class_assignment_id == a.id]
        ids = list({i.exercise_id for items in by_assignment.values() for i in items})
        stats = await exercises.learner_work(session, user.id, ids)
        titles = await exercises.titles(session, ids)
        for a in assignments:
            items_out = []
            for item in by_assignment.get(a.id, []):
                stat = stats.get(item.exercise_id)
                title = titles.get(item.exercise_id)
                items_out.append(
                    ItemOut(
                        exercise_id=item.exercise_id, slug=title.slug if title else "",
                        title=title.title if title else "",
                        status=item_status(stat, a.due_at),
                        attempts=stat.attempts if stat else 0,
                        passed_at=stat.first_pass_at if stat else None,
                    )
                )  # fmt: skip
            out.append(_assignment_out(a, room, user.timezone, now, items_out))
    out.sort(key=lambda a: a.due_at)
    return out


def _assignment_out(
    a: ClassAssignment, room: ClassRoom, zone: str, now: datetime, items: list[ItemOut] | None
) -> ClassAssignmentOut:
    return ClassAssignmentOut(
        id=a.id,
        class_id=room.id,
        class_name=room.name,
        title=a.title,
        kind=a.kind,
        skill=a.skill,
        level=a.level,
        count=a.count,
        opens_at=a.opens_at,
        due_at=a.due_at,
        due_local=local_label(a.due_at, zone),
        is_open=a.opens_at <= now < a.due_at,
        status=overall_status([i.status for i in items]) if items is not None else None,
        items=items or [],
    )


async def staff_assignments(
    session: AsyncSession, res: Resources, member: Membership, viewer: User
) -> list[ClassAssignmentOut]:
    now = res.clock.now()
    room = member.room
    everyone: dict[uuid.UUID, list[ClassAssignmentItem]] = {}
    for item in await repository.items(session, room.id):
        if item.user_id is None:
            everyone.setdefault(item.class_assignment_id, []).append(item)
    ids = {i.exercise_id for items in everyone.values() for i in items}
    titles = await exercises.titles(session, list(ids))
    out = []
    for a in await repository.class_assignments(session, room.id):
        row = _assignment_out(a, room, viewer.timezone, now, None)
        row.items = [
            ItemOut(
                exercise_id=i.exercise_id,
                slug=titles[i.exercise_id].slug if i.exercise_id in titles else "",
                title=titles[i.exercise_id].title if i.exercise_id in titles else "",
                status="not_started",
                attempts=0,
                passed_at=None,
            )  # fmt: skip
            for i in everyone.get(a.id, [])
        ]
        out.append(row)
    return out


async def open_assignment_exercises(
    session: AsyncSession, user_id: uuid.UUID, now: datetime
) -> set[uuid.UUID]:
    """Exercises of a class assignment open for `user_id` now (the daily pick leaves them)."""
    return await repository.open_class_exercise_ids(session, user_id, now)
