"""Every call Koan makes to the tutor's model goes through here: the budget held before, the
call recorded and the budget settled after, and the cache of deterministic replies."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koan.errors import TutorUnavailable
from koan.llm import Completion, CompletionRequest, Usage
from koan.llm.types import Purpose
from koan.models import LLMCall
from koan.resources import Resources
from koan.tutor_gateway import repository
from koan.tutor_gateway.budgets import Limit, release, reserve, settle, usd, utc_day

log = structlog.get_logger(__name__)


async def store(session: AsyncSession, call: LLMCall) -> LLMCall:
    """Store the record of one call (`call_record`)."""
    return await repository.add_call(session, call)


def call_record(
    res: Resources,
    *,
    user_id: uuid.UUID,
    purpose: Purpose,
    day: date,
    completion: Completion | None = None,
    usage: Usage | None = None,
    cost_usd: Decimal | None = None,
    cache_hit: bool = False,
    leak_caught: bool = False,
    outcome: str = "ok",
    exercise_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    model: str | None = None,
    provider: str | None = None,
) -> LLMCall:
    """The record of one call, not stored yet; the cost of a cache hit is 0, whatever the
    original cost. `model` and `provider` name who answered when there is no `completion`
    (a stream broken off: the chain may have fallen back); else the primary is named."""
    usage = usage or (completion.usage if completion else Usage(0, 0, True))
    cost = Decimal(0) if cache_hit else (cost_usd if cost_usd is not None else (
        completion.cost_usd if completion else Decimal(0)
    ))  # fmt: skip
    return LLMCall(
        user_id=user_id,
        purpose=purpose,
        provider=(completion.provider if completion else provider or res.llm.provider.name)[:64],
        model=(completion.model if completion else model or res.llm.model)[:128],
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usd(cost),
        latency_ms=0 if cache_hit or completion is None else completion.latency_ms,
        cache_hit=cache_hit,
        leak_caught=leak_caught,
        outcome=outcome,
        exercise_id=exercise_id,
        conversation_id=conversation_id,
        day=day,
        created_at=res.clock.now(),
    )


# -- the cache of deterministic replies ---------------------------------------------------------


def cache_key(request: CompletionRequest, model: str, *, scope: str) -> str:
    """Key of a deterministic request: model + messages, within a scope (an exercise).

    Only temperature-0 requests for hints and explanations qualify; chat replies are private
    conversations and are never cached.
    """
    if request.temperature != 0 or request.purpose == "chat":
        raise ValueError("only deterministic hint/explanation requests may be cached")
    payload = json.dumps(
        {
            "model": model,
            "purpose": request.purpose,
            "max_tokens": request.max_tokens,
            "messages": [[m.role, m.content] for m in request.messages],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return f"llm:reply:{scope}:{hashlib.sha256(payload.encode()).hexdigest()}"


async def cached_reply(res: Resources, key: str) -> Completion | None:
    raw = await res.cache.get(key)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return Completion(
            text=str(data["text"]),
            model=str(data["model"]),
            provider=str(data["provider"]),
            usage=Usage(int(data["input_tokens"]), int(data["output_tokens"])),
            latency_ms=0,
            finish_reason="stop",
            cost_usd=Decimal(0),
        )
    except (ValueError, KeyError, TypeError):
        await res.cache.delete(key)
        return None


async def store_reply(res: Resources, key: str, completion: Completion) -> None:
    if res.settings.llm_cache_ttl_s <= 0:
        return
    payload = {
        "text": completion.text,
        "model": completion.model,
        "provider": completion.provider,
        "input_tokens": completion.usage.input_tokens,
        "output_tokens": completion.usage.output_tokens,
    }
    await res.cache.set(key, json.dumps(payload), ttl_s=res.settings.llm_cache_ttl_s)


# -- one whole (non-streamed) call ---------------------------------------------------------------


@dataclass
class Call:
    """A finished call and its record (the caller may still flag a leak on it; with
    `complete(..., record_later=True)` the caller also stores it: `stored` is false)."""

    completion: Completion
    record: LLMCall
    cache_hit: bool = False
    stored: bool = True


async def complete(
    session: AsyncSession,
    res: Resources,
    *,
    user_id: uuid.UUID,
    request: CompletionRequest,
    exercise_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    cache: str | None = None,
    limits: Sequence[Limit] = (),
    record_later: bool = False,
) -> Call:
    """Budget, (cache,) call, record, settle. `cache` is a key from cache_key(): looked up
    here; storing is left to the caller, which stores only replies it accepted. `limits`:
    daily limits the call counts against beside the learner's and Koan's (a class's).
    `record_later`: a successful call's record is returned unstored, for the caller to store
    with what the call produced (a failed call is recorded at once all the same)."""
    day = utc_day(res.clock.now())
    if cache is not None:
        hit = await cached_reply(res, cache)
        if hit is not None:
            rec = await store(session, call_record(
                res, user_id=user_id, purpose=request.purpose, day=day, completion=hit,
                cache_hit=True, exercise_id=exercise_id, conversation_id=conversation_id,
            ))  # fmt: skip
            return Call(hit, rec, cache_hit=True)
    reservation = await reserve(
        session, res, user_id, res.llm.projected_cost(request), limits=limits
    )
    try:
        completion = await res.llm.provider.complete(request)
    except TutorUnavailable as exc:
        await release(res, reservation)
        await store(session, call_record(
            res, user_id=user_id, purpose=request.purpose, day=reservation.day,
            outcome="error", exercise_id=exercise_id, conversation_id=conversation_id,
        ))  # fmt: skip
        # The failed call stays on record (and, in chat, the learner's message was committed).
        exc.keep_changes = True
        raise
    except BaseException:
        await release(res, reservation)
        raise
    await settle(res, reservation, completion.cost_usd)
    rec = call_record(
        res, user_id=user_id, purpose=request.purpose, day=reservation.day,
        completion=completion, exercise_id=exercise_id, conversation_id=conversation_id,
    )  # fmt: skip
    if not record_later:
        await store(session, rec)
    log.info(
        "llm.call",
        purpose=request.purpose,
        provider=completion.provider,
        model=completion.model,
        cost_usd=str(completion.cost_usd),
        latency_ms=completion.latency_ms,
    )
    return Call(completion, rec, stored=not record_later)
