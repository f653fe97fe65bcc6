"""The caller's session and account, kept per process so an authenticated request needs no
database round trip, and still ended everywhere the moment a change to them commits.

Each worker keeps what the session query found (the session, the user, their profile) for a
session id, with the *generations* the shared cache held when the query ran: one for the user
and one for every account. Every request reads both generations (one cache round trip, MGET on
Redis) and uses what it kept only when they are unchanged, so a kept copy can never outlive a
change that another worker made and announced.

A change is announced by any commit that wrote a user, a session or a profile: the session
events below see every ORM flush and every bulk UPDATE/DELETE/INSERT on those tables (logout,
revocation, a password change, disabling, a new role, a rename, a deleted account) and, once
the unit of work has committed (`koan.db.after_commit`, before the response is sent), give the
user's generation a new random value. Writing it only after the commit matters: a worker that
read the new generation before the commit could otherwise keep the old rows under it.

A kept copy is also never used when the shared cache cannot answer for every worker (Redis
unreachable, or the in-process cache with several worker processes), and never for longer than
`MAX_AGE_S`: the bound on staleness if the cache was unreachable exactly when a change was
announced (logged as `auth.change_not_announced`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, instance_state, manager_of_class

from koan.auth import repository
from koan.cache import SESSION_CACHE, Cache, MemoryCache
from koan.db import after_commit, memo
from koan.models import AuthSession, LearnerProfile, User
from koan.ops.metrics import multiprocess_enabled

log = structlog.get_logger(__name__)

# How long a kept copy may be used at most, whatever the generations say.
MAX_AGE_S: Final = 30.0
# Sessions kept per process; the oldest goes first.
MAX_ENTRIES: Final = 10_000
# Generations outlive any kept copy by far; one that expired reads as missing, and a missing
# generation is never matched (it gets a fresh random value first).
GENERATION_TTL_S: Final = 24 * 3600.0
EVERY_ACCOUNT: Final = "auth:generation"
WATCHED_TABLES: Final = frozenset(
    {User.__tablename__, AuthSession.__tablename__, LearnerProfile.__tablename__}
)
# A bulk statement on a watched table that names the users it changes, so only theirs are
# announced (without it, every account's copies are dropped).
CHANGES_USERS: Final = "koan_changes_users"

_CHANGED = "koan.auth.changed"
_ALL: Final = "*"


def user_generation_key(user_id: uuid.UUID) -> str:
    return f"auth:generation:{user_id}"


@dataclass(frozen=True, slots=True)
class RowCopy:
    """A row's column values; those of JSON columns (dicts and lists a handler may change in
    place) as JSON text, so each request gets values of its own."""

    values: dict[str, Any]
    encoded: dict[str, str]

    @classmethod
    def of(cls, row: Any) -> RowCopy:
        state = instance_state(row)
        loaded = state.dict
        values: dict[str, Any] = {}
        encoded: dict[str, str] = {}
        for attr in state.mapper.column_attrs:
            value = loaded[attr.key]
            if isinstance(value, dict | list):
                encoded[attr.key] = json.dumps(value)
            else:
                values[attr.key] = value
        return cls(values, encoded)

    def loaded(self) -> dict[str, Any]:
        found = dict(self.values)
        for key, text in self.encoded.items():
            found[key] = json.loads(text)
        return found


@dataclass(frozen=True, slots=True)
class Snapshot:
    user_id: uuid.UUID
    source: Cache
    generations: tuple[str, str]
    stored_at: float
    auth_session: RowCopy
    user: RowCopy
    profile: RowCopy | None


class SnapshotStore:
    """Kept copies by session id (one per process; see the module's docstring)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_age_s: float = MAX_AGE_S) -> None:
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._by_session: dict[uuid.UUID, Snapshot] = {}
        self._by_user: dict[uuid.UUID, set[uuid.UUID]] = {}

    def __len__(self) -> int:
        return len(self._by_session)

    def get(
        self, source: Cache, session_id: uuid.UUID, user_id: uuid.UUID, generations: tuple[str, str]
    ) -> Snapshot | None:
        found = self._by_session.get(session_id)
        if (
            found is None
            or found.source is not source
            or found.user_id != user_id
            or found.generations != generations
        ):
            return None
        if time.monotonic() - found.stored_at >= self.max_age_s:
            self._drop(session_id)
            return None
        return found

    def put(self, session_id: uuid.UUID, snapshot: Snapshot) -> None:
        self._drop(session_id)
        while len(self._by_session) >= self.max_entries:
            self._drop(next(iter(self._by_session)))
        self._by_session[session_id] = snapshot
        self._by_user.setdefault(snapshot.user_id, set()).add(session_id)

    def forget(self, users: Iterable[uuid.UUID | str]) -> None:
        for user_id in users:
            if not isinstance(user_id, uuid.UUID):  # "*": every account
                self.clear()
                return
            for session_id in self._by_user.pop(user_id, ()):
                self._by_session.pop(session_id, None)

    def clear(self) -> None:
        self._by_session.clear()
        self._by_user.clear()

    def _drop(self, session_id: uuid.UUID) -> None:
        found = self._by_session.pop(session_id, None)
        if found is not None:
            sessions = self._by_user.get(found.user_id)
            if sessions is not None:
                sessions.discard(session_id)
                if not sessions:
                    del self._by_user[found.user_id]


store = SnapshotStore()


async def live_session_and_user(
    session: AsyncSession, cache: Cache, session_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[AuthSession, User] | None:
    """`repository.live_session_and_user`, from this process's copy when the shared cache
    says nothing about the user or their sessions has changed since it was read."""
    generations = await _generations(cache, user_id)
    if generations is not None and not session.identity_map:
        kept = store.get(cache, session_id, user_id, generations)
        if kept is not None:
            return _attach(session, kept)
    return await _read(session, cache, session_id, user_id, generations)


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller's rows for a route that only shows them: in no session, so nothing about
    them is flushed (or can be lazily loaded)."""

    auth_session: AuthSession
    user: User
    profile: LearnerProfile | None


async def caller(
    open_session: Callable[[], AbstractAsyncContextManager[AsyncSession]],
    cache: Cache,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
) -> Caller | None:
    """What `live_session_and_user` finds (and the profile), for reading only: from this
    process's copy under the same check, without a database session; else read in a session
    `open_session` opens for it."""
    generations = await _generations(cache, user_id)
    if generations is not None:
        kept = store.get(cache, session_id, user_id, generations)
        if kept is not None:
            return Caller(
                _copy(AuthSession, kept.auth_session),
                _copy(User, kept.user),
                None if kept.profile is None else _copy(LearnerProfile, kept.profile),
            )
    async with open_session() as session:
        found = await _read(session, cache, session_id, user_id, generations)
        if found is None:
            return None
        return Caller(*found, memo(session).get(("caller_profile", user_id)))


async def _read(
    session: AsyncSession,
    cache: Cache,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    generations: tuple[str, str] | None,
) -> tuple[AuthSession, User] | None:
    """The query, its rows kept under `generations` when those can be trusted."""
    found = await repository.live_session_and_user(session, session_id, user_id)
    if found is not None and generations is not None:
        auth_session, user = found
        profile = memo(session).get(("caller_profile", user_id))
        store.put(
            session_id,
            Snapshot(
                user_id=user_id,
                source=cache,
                generations=generations,
                stored_at=time.monotonic(),
                auth_session=RowCopy.of(auth_session),
                user=RowCopy.of(user),
                profile=None if profile is None else RowCopy.of(profile),
            ),
        )
    return found


def _shared_by_every_worker(cache: Cache) -> bool:
    # The in-process cache is every worker's only when there is one worker process.
    return not isinstance(cache, MemoryCache) or not multiprocess_enabled()


async def _generations(cache: Cache, user_id: uuid.UUID) -> tuple[str, str] | None:
    """Every account's and this user's generation, or None when they cannot be trusted."""
    if not _shared_by_every_worker(cache):
        return None
    keys = [EVERY_ACCOUNT, user_generation_key(user_id)]
    try:
        every, mine = await cache.get_many(keys)
        # Answered by a per-process fallback while Redis is unreachable: other workers'
        # announcements are not in it, nor will the ones made meanwhile be once it is back.
        if getattr(cache, "degraded", False):
            store.clear()
            return None
        if every is None:
            every = await _first_generation(cache, keys[0])
        if mine is None:
            mine = await _first_generation(cache, keys[1])
    except Exception:  # the database answers instead; the cache's own error is logged there
        return None
    if every is None or mine is None or getattr(cache, "degraded", False):
        return None
    return every, mine


async def _first_generation(cache: Cache, key: str) -> str | None:
    """A fresh value for a generation nobody has set (or that expired), or None if another
    worker set one meanwhile (the next request reads it)."""
    fresh = uuid.uuid4().hex
    return fresh if await cache.set_if_absent(key, fresh, ttl_s=GENERATION_TTL_S) else None


def _copy(cls: type[Any], kept: RowCopy) -> Any:
    # Built as a query's result is: no constructor, no attribute events.
    row = manager_of_class(cls).new_instance()
    instance_dict(row).update(kept.loaded())
    return row


def _instance(session: AsyncSession, cls: type[Any], kept: RowCopy) -> Any:
    # Made what a row just loaded is: no pending changes, and a persistent member of the
    # request's session (session.get finds it, a change to it is flushed as an UPDATE).
    row = _copy(cls, kept)
    make_transient_to_detached(row)
    session.add(row)
    return row


def _attach(session: AsyncSession, kept: Snapshot) -> tuple[AuthSession, User]:
    auth_session = _instance(session, AuthSession, kept.auth_session)
    user = _instance(session, User, kept.user)
    profile = None if kept.profile is None else _instance(session, LearnerProfile, kept.profile)
    memo(session)[("caller_profile", kept.user_id)] = profile
    return auth_session, user


# -- announcing changes -------------------------------------------------------------------------


def _mark(session: Session, users: set[uuid.UUID | str]) -> None:
    if not users:
        return
    store.forget(users)  # this process at once (a test's flush, a later read in this request)
    cache = session.info.get(SESSION_CACHE)
    if cache is None:
        return  # a session no worker serves from (tests' own, scripts): nothing to announce

    async def announce(_: AsyncSession) -> None:
        await announce_changes(cache, users)

    after_commit(session, announce)


async def announce_changes(cache: Cache, users: Iterable[uuid.UUID | str]) -> None:
    """Give the users' generations (or every account's, for "*") a new value, so no worker
    uses what it kept of them; and drop this process's copies."""
    users = set(users)
    store.forget(users)
    keys = (
        [EVERY_ACCOUNT]
        if _ALL in users
        else [user_generation_key(user_id) for user_id in users if isinstance(user_id, uuid.UUID)]
    )
    try:
        for key in keys:
            await cache.set(key, uuid.uuid4().hex, ttl_s=GENERATION_TTL_S)
        failed = bool(getattr(cache, "degraded", False))
    except Exception:
        failed = True
    if failed:
        # Other workers may use their copies for up to MAX_AGE_S; this one keeps none.
        store.clear()
        log.error("auth.change_not_announced", users=len(users), max_age_s=MAX_AGE_S)


@event.listens_for(Session, "after_flush")
def _rows_flushed(session: Session, _flush: UOWTransaction) -> None:
    users: set[uuid.UUID | str] = set()
    for row in (*session.new, *session.dirty, *session.deleted):
        if isinstance(row, User | AuthSession | LearnerProfile):
            # Read without loading anything; a row whose owner is not at hand counts for all.
            loaded: dict[str, Any] = instance_state(row).dict
            owner = loaded.get("id" if isinstance(row, User) else "user_id")
            users.add(owner if isinstance(owner, uuid.UUID) else _ALL)
    _mark(session, users)


@event.listens_for(Session, "do_orm_execute")
def _bulk_statement(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) not in WATCHED_TABLES:
        return
    named = state.execution_options.get(CHANGES_USERS)
    _mark(state.session, set(named) if named is not None else {_ALL})
