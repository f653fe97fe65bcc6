"""Queries for conversations and their messages."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from operator import itemgetter
from typing import NamedTuple, cast

from sqlalchemy import (
    Subquery,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from koan.auth.repository import LIVE_SESSION_AND_USER
from koan.db import utcnow
from koan.db.scope import set_for
from koan.db.stats import json_rows
from koan.models import (
    AuthSession,
    Conversation,
    ConversationMessage,
    LearnerProfile,
    LLMCall,
    ShownCode,
    User,
)
from koan.tutor_gateway import repository as calls


async def conversation_of(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    """The conversation if it belongs to this learner (else None, as if it did not exist)."""
    return (
        await session.execute(
            select(Conversation).where(
                Conversation.id == conversation_id, Conversation.user_id == user_id
            )
        )
    ).scalar_one_or_none()


class ReplyStart(NamedTuple):
    """What a reply starts from: the caller's live session and user, their conversation (None
    if it is not theirs), their profile, and the conversation's newest messages."""

    auth_session: AuthSession
    user: User
    conversation: Conversation | None
    profile: LearnerProfile | None
    history: list[tuple[str, str]]


async def caller_and_conversation(
    session: AsyncSession,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    history_limit: int,
) -> ReplyStart | None:
    """What a reply starts from, in one round trip (None if the caller's session ended). The
    history is the newest `history_limit` messages as (role, content), oldest first, read in
    the same snapshot as the conversation's `message_count`."""
    params = {
        "session_id": session_id,
        "user_id": user_id,
        "conversation_id": conversation_id,
        "history_limit": history_limit,
    }
    row = (await session.execute(_CALLER_AND_CONVERSATION, params)).one_or_none()
    if row is None:
        return None
    rows = sorted(row[4] or (), key=itemgetter(0))  # [seq, role, content], in any order
    return ReplyStart(row[0], row[1], row[3], row[2], [(role, text) for _, role, text in rows])


# The statements every reply runs are built once: building one and computing its cache key
# is CPU spent again on every message.
_NEWEST = (
    select(ConversationMessage.seq, ConversationMessage.role, ConversationMessage.content)
    .where(ConversationMessage.conversation_id == Conversation.id)
    .order_by(ConversationMessage.seq.desc())
    .limit(bindparam("history_limit"))
    .correlate(Conversation)
    .subquery("newest")
)
_CALLER_AND_CONVERSATION = (
    # The caller's session, user and profile, then the conversation and its history.
    LIVE_SESSION_AND_USER.add_columns(
        Conversation,
        # The history as one JSON value: a query less on every message but a conversation's
        # first.
        select(json_rows(_NEWEST.c.seq, _NEWEST.c.role, _NEWEST.c.content)).scalar_subquery(),
    ).outerjoin(
        Conversation,
        and_(Conversation.id == bindparam("conversation_id"), Conversation.user_id == User.id),
    )
)


async def conversations(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Conversation]:
    """The learner's conversations, most recently active first."""
    query = (
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        .limit(limit)
    )
    if before is not None:
        stamp, last_id = before
        query = query.where(
            or_(
                Conversation.updated_at < stamp,
                and_(Conversation.updated_at == stamp, Conversation.id < last_id),
            )
        )
    return (await session.execute(query)).scalars().all()


async def messages_before(
    session: AsyncSession, conversation_id: uuid.UUID, *, before_seq: int | None, limit: int
) -> Sequence[ConversationMessage]:
    """Up to `limit` messages older than `before_seq` (newest first)."""
    query = (
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conversation_id)
        .order_by(ConversationMessage.seq.desc())
        .limit(limit)
    )
    if before_seq is not None:
        query = query.where(ConversationMessage.seq < before_seq)
    return (await session.execute(query)).scalars().all()


async def add_message(
    session: AsyncSession,
    conversation: Conversation,
    message: ConversationMessage,
    *,
    call: LLMCall | None = None,
) -> ConversationMessage | None:
    """Append a message to a loaded conversation: `append_message`, and the conversation takes
    `conversation.title` if it has none yet. The loaded object is brought up to date as if it
    had been flushed. None if the conversation is gone."""
    stored = await append_message(
        session, conversation.id, message, title=conversation.title, call=call
    )
    if stored is not None:
        # As if flushed: the session has nothing left to write for the conversation.
        for key, value in (
            ("message_count", stored.seq),
            ("updated_at", stored.created_at),
            ("title", conversation.title),
        ):
            set_committed_value(conversation, key, value)
    return stored


def _message_row(conversation_id: uuid.UUID, message: ConversationMessage) -> dict[str, object]:
    """Every column of `message` but its number, the model's defaults applied: set on the
    object too, so that once stored it reads like a flushed one."""
    message.conversation_id = conversation_id
    for key, default in _MESSAGE_DEFAULTS:
        if getattr(message, key) is None:
            setattr(message, key, default())
    return {key: getattr(message, key) for key in _MESSAGE_KEYS if key != "seq"}


# The tables themselves: statements on them skip the ORM's per-statement bookkeeping.
_MESSAGES = cast(Table, ConversationMessage.__table__)
_MESSAGE_KEYS = tuple(column.key for column in _MESSAGES.columns)


def _column_defaults(table: Table) -> tuple[tuple[str, Callable[[], object]], ...]:
    """The Python-side defaults of `table`'s columns, as an INSERT of the ORM would apply them
    (SQLAlchemy wraps a callable default to take an execution context, which none here use)."""
    found: list[tuple[str, Callable[[], object]]] = []
    for column in table.columns:
        default = column.default
        if isinstance(default, ScalarElementColumnDefault):
            found.append((column.key, partial(_same, default.arg)))
        elif isinstance(default, CallableColumnDefault):
            make = cast(Callable[[object], object], default.arg)
            found.append((column.key, partial(make, None)))
    return tuple(found)


def _same(value: object) -> object:
    return value


_MESSAGE_DEFAULTS = _column_defaults(_MESSAGES)
_INSERT_MESSAGE = insert(_MESSAGES)
_CONVERSATIONS = cast(Table, Conversation.__table__)


async def delete_conversation(session: AsyncSession, conversation: Conversation) -> None:
    await session.execute(delete(Conversation).where(Conversation.id == conversation.id))


_NEXT_SEQ = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("conversation_id", type_=_CONVERSATIONS.c.id.type))
    .values(
        message_count=_CONVERSATIONS.c.message_count + 1,
        updated_at=bindparam("now"),
        # A title is given once, by the first message; one set since is never overwritten.
        title=case(
            (_CONVERSATIONS.c.title == "", bindparam("title")), else_=_CONVERSATIONS.c.title
        ),
    )
    .returning(_CONVERSATIONS.c.message_count)
)


async def append_message(
    session: AsyncSession,
    conversation_id: uuid.UUID,
    message: ConversationMessage,
    *,
    title: str = "",
    call: LLMCall | None = None,
) -> ConversationMessage | None:
    """Append a message: numbered after the last one (the count is bumped and read back in the
    same statement, so the number never comes from a read made before the reply lock was
    taken), and the conversation becomes the most recent. None if the conversation is gone.
    `call`: the record of the model's call that wrote the message, stored with it (whether or
    not the conversation is still there).

    Callers hold the learner's reply lock, so one writer numbers a conversation's messages at
    a time; the unique (conversation_id, seq) constraint backs that up. Plain statements, not
    a unit-of-work flush: a third less CPU, on every message. On PostgreSQL the count, the
    message and the call are written by one statement, on SQLite (no writes inside WITH) by
    two, and one more for the call."""
    if message.created_at is None:
        message.created_at = utcnow()
    row = _message_row(conversation_id, message)
    bump = {"conversation_id": conversation_id, "now": message.created_at, "title": title}
    if session.get_bind().dialect.name == "postgresql":
        params = {**bump, **{f"message_{key}": value for key, value in row.items()}}
        statement = _APPEND_MESSAGE
        if call is not None:
            params.update(calls.call_params(call))
            statement = _APPEND_MESSAGE_AND_CALL
        seq = (await session.execute(statement, params)).scalar_one_or_none()
        if call is not None:
            calls.stored_call(session, call)
    else:
        if call is not None:
            await calls.add_call(session, call)
        seq = (await session.execute(_NEXT_SEQ, bump)).scalar_one_or_none()
        if seq is not None:
            await session.execute(_INSERT_MESSAGE, {**row, "seq": seq})
    if seq is None:
        return None
    message.seq = seq
    return message


_BUMPED = _NEXT_SEQ.cte("bumped")
_APPEND_MESSAGE = (
    insert(_MESSAGES)
    .from_select(
        _MESSAGE_KEYS,
        select(
            *(
                # Named apart from the conversation's columns, which an UPDATE would take
                # as values to set.
                _BUMPED.c.message_count
                if key == "seq"
                else bindparam(f"message_{key}", type_=column.type)
                for key, column in zip(_MESSAGE_KEYS, _MESSAGES.columns, strict=True)
            )
        ),
    )
    .returning(_MESSAGES.c.seq)
)
_APPEND_MESSAGE_AND_CALL = _APPEND_MESSAGE.add_cte(calls.ADD_CALL_CTE)


async def conversations_after(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Conversation]:
    """The learner's conversations, oldest first, after the key (created at, id) of the last."""
    query = (
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(Conversation.created_at, Conversation.id)
        .limit(limit)
    )
    if after is not None:
        stamp, last_id = after
        query = query.where(
            or_(
                Conversation.created_at > stamp,
                and_(Conversation.created_at == stamp, Conversation.id > last_id),
            )
        )
    return (await session.execute(query)).scalars().all()


async def messages_of(
    session: AsyncSession, conversation_ids: Sequence[uuid.UUID]
) -> Sequence[ConversationMessage]:
    """Every message of these conversations, in order within each."""
    if not conversation_ids:
        return []
    query = (
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id.in_(conversation_ids))
        .order_by(ConversationMessage.conversation_id, ConversationMessage.seq)
    )
    return (await session.execute(query)).scalars().all()


# -- conversations about given exercises (a class's dashboards) ---------------------------------


async def questions_by_learner(
    session: AsyncSession,
    learners: Sequence[uuid.UUID],
    exercises: Sequence[uuid.UUID],
    *,
    pairs: Subquery | None = None,
) -> dict[uuid.UUID, int]:
    """Learner -> messages they sent the tutor in conversations about `exercises` (only those
    `pairs` sets them, when given; conversations by ix_conversations_user_updated, messages
    by their conversation key)."""
    if not learners or not exercises:
        return {}
    query = (
        select(Conversation.user_id, func.count())
        .join(ConversationMessage, ConversationMessage.conversation_id == Conversation.id)
        .where(
            Conversation.user_id.in_(list(learners)),
            Conversation.exercise_id.in_(list(exercises)),
            set_for(pairs, Conversation.user_id, Conversation.exercise_id),
            ConversationMessage.role == "user",
        )
        .group_by(Conversation.user_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(query)}


async def conversations_about(
    session: AsyncSession,
    user_id: uuid.UUID,
    exercises: Sequence[uuid.UUID],
    *,
    conversation_id: uuid.UUID | None = None,
) -> Sequence[Conversation]:
    """One learner's conversations about any of `exercises` (never their others), most
    recently active first; only `conversation_id` when given."""
    if not exercises:
        return []
    query = select(Conversation).where(
        Conversation.user_id == user_id, Conversation.exercise_id.in_(list(exercises))
    )
    if conversation_id is not None:
        query = query.where(Conversation.id == conversation_id)
    query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
    return (await session.execute(query)).scalars().all()


# -- what the tutor showed about an exercise (the leak guard's sum) ------------------------------


_SHOWN = cast(Table, ShownCode.__table__)
_INSERT_SHOWN = insert(_SHOWN)


async def add_shown(
    session: AsyncSession,
    user_id: uuid.UUID,
    exercise_ids: Sequence[uuid.UUID],
    code: str,
    *,
    conversation_id: uuid.UUID | None,
    now: datetime,
) -> None:
    """Note that the learner was shown `code` about each of these exercises."""
    rows = [
        {"user_id": user_id, "exercise_id": exercise_id, "conversation_id": conversation_id,
         "code": code, "created_at": now}
        for exercise_id in exercise_ids
    ]  # fmt: skip
    if rows:
        await session.execute(_INSERT_SHOWN, rows)


async def shown_about(
    session: AsyncSession,
    user_id: uuid.UUID,
    exercise_ids: Sequence[uuid.UUID],
    *,
    besides: uuid.UUID | None,
    limit: int,
) -> dict[uuid.UUID, list[str]]:
    """Exercise -> the newest `limit` pieces of code the learner was shown about it, oldest
    first, but those shown in conversation `besides` (its history is read whole), in one
    query (ix_shown_code_user_exercise)."""
    if not exercise_ids:
        return {}
    params = {"user_id": user_id, "exercise_ids": list(exercise_ids),
              "besides": besides or _NO_CONVERSATION, "limit": limit}  # fmt: skip
    found: dict[uuid.UUID, list[str]] = {exercise_id: [] for exercise_id in exercise_ids}
    for exercise_id, code in await session.execute(_SHOWN_ABOUT, params):
        found[exercise_id].append(code)
    return found


async def shown_after(
    session: AsyncSession, user_id: uuid.UUID, *, after: int | None, limit: int
) -> Sequence[ShownCode]:
    """What the learner was shown, in the order shown, after the ledger row numbered `after`."""
    query = (
        select(ShownCode).where(ShownCode.user_id == user_id).order_by(ShownCode.id).limit(limit)
    )
    if after is not None:
        query = query.where(ShownCode.id > after)
    return (await session.execute(query)).scalars().all()


# No conversation's id: `besides` for a hint, which has none to leave out.
_NO_CONVERSATION = uuid.UUID(int=0)
_NUMBERED_SHOWN = (
    select(
        _SHOWN.c.id,
        _SHOWN.c.exercise_id,
        _SHOWN.c.code,
        func.row_number()
        .over(partition_by=_SHOWN.c.exercise_id, order_by=_SHOWN.c.id.desc())
        .label("newest"),
    )
    .where(
        _SHOWN.c.user_id == bindparam("user_id"),
        _SHOWN.c.exercise_id.in_(bindparam("exercise_ids", expanding=True)),
        # A deleted conversation's code has no conversation any more, and counts.
        or_(
            _SHOWN.c.conversation_id.is_(None),
            _SHOWN.c.conversation_id != bindparam("besides", type_=_SHOWN.c.conversation_id.type),
        ),
    )
    .subquery("numbered")
)
_SHOWN_ABOUT = (
    select(_NUMBERED_SHOWN.c.exercise_id, _NUMBERED_SHOWN.c.code)
    .where(_NUMBERED_SHOWN.c.newest <= bindparam("limit"))
    .order_by(_NUMBERED_SHOWN.c.id)
)
