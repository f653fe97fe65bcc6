"""Hints written by the model for the learner's latest code, with the authored ladder as the
fallback whenever the model cannot be used (offline, error, budget, or a reply that leaks)."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koan.chat import repository as chat_repository
from koan.chat.context import SHOWN_LIMIT, exercise_context, strictness_of
from koan.chat.policy import PolicyLookup
from koan.errors import BudgetExceeded, TutorUnavailable
from koan.exercises import lifecycle
from koan.exercises import repository as exercises
from koan.llm import ChatMessage, CompletionRequest, LearnerBrief, build_system_prompt, patches
from koan.llm.offline import OFFLINE_MODEL, offline_rung_given
from koan.models import Exercise, User
from koan.onboarding import service as profiles
from koan.ops import metrics
from koan.resources import Resources
from koan.tutor_gateway import calls

log = structlog.get_logger(__name__)

HINT_MAX_TOKENS = 300


async def tailored_hint(
    session: AsyncSession,
    res: Resources,
    user: User,
    exercise: Exercise,
    *,
    rung: int,
    authored: str,
    policy: PolicyLookup | None = None,
) -> str:
    """Hint number `rung` (0-based) tailored to the learner's code, or the authored rung.

    `policy` (the app wires in the classes'): a class that sets the exercise has its say as
    over the tutor's replies: its strictness and its instructions and words to avoid (in the
    hint's prompt), its tutor switched off or an exam window (the authored rung, the model not
    asked), and its budgets, which the hint's cost counts against."""
    if not res.llm.tailors_hints:
        return authored
    rules = await policy(session, user, exercise.id, now=res.clock.now()) if policy else None
    if rules is not None and rules.off:
        return authored
    # The hint ladder asks for rung `rung` of the assignment it has just read: the hints
    # it has shown so far (next_hint), so the context need not read the assignment again.
    strictness = strictness_of(res.settings, rules.strictness if rules else None)
    context, guard = await exercise_context(
        session, user, exercise, threshold=res.settings.llm_leak_threshold,
        strictness=strictness, sandbox=res.sandbox, known=res.known_programs, hints_used=rung,
    )  # fmt: skip
    # Only the experience level: the prompt (and so the cache entry) holds nothing personal,
    # which is what lets two learners with the same code share one cached hint (under the
    # same class policy, which is part of the prompt and so of the key).
    profile = await profiles.profile_of(session, user)
    learner = LearnerBrief(experience=profile.experience or "beginner")
    total = len(exercise.hints)
    request = CompletionRequest(
        messages=[
            build_system_prompt(
                profile=learner,
                context=context,
                mode="hint",
                strictness=strictness,
                teacher=rules.system_prompt() if rules else "",
            ),
            ChatMessage(
                "user",
                f"I'd like hint {rung + 1} of {total}. Give it at the level of detail of that "
                "hint, about my latest code.",
            ),
        ],
        temperature=0.0,
        max_tokens=HINT_MAX_TOKENS,
        purpose="hint",
        context=context,
    )
    key = calls.cache_key(request, res.llm.model, scope=f"exercise:{exercise.id}")
    try:
        call = await calls.complete(
            session, res, user_id=user.id, request=request, exercise_id=exercise.id, cache=key,
            limits=tuple(rules.budgets) if rules else (),
        )  # fmt: skip
    except (TutorUnavailable, BudgetExceeded) as exc:
        log.info("hint.ladder_fallback", reason=exc.code, exercise_id=str(exercise.id))
        return authored
    text = call.completion.text.strip()
    if not text:
        return authored
    code = patches.shown_code(text)
    if code:  # added up with what the learner was shown before (replies, hints), as a reply is
        shown = await chat_repository.shown_about(
            session, user.id, guard.exercise_ids, besides=None, limit=SHOWN_LIMIT
        )
        guard = guard.with_shown((), shown)
    if (await guard.check(text)).leak:
        call.record.leak_caught = True
        await session.flush()
        metrics.leak_caught()
        log.warning("tutor.leak_caught", purpose="hint", exercise_id=str(exercise.id))
        return authored
    if not call.cache_hit and res.llm.by_primary(call.completion):
        # Keyed by the primary model: a fallback's hint would be served in its place for as
        # long as the entry lives, the primary back or not.
        await calls.store_reply(res, key, call.completion)
    if code and call.completion.model != OFFLINE_MODEL:  # Koan's own tutor writes no code
        await chat_repository.add_shown(
            session, user.id, guard.exercise_ids, code, conversation_id=None, now=res.clock.now()
        )
    return text


async def count_offline_rung(
    session: AsyncSession,
    res: Resources,
    user: User,
    exercise_id: uuid.UUID | None,
    request: CompletionRequest,
) -> None:
    """A hint rung the offline tutor showed in chat counts as used, as one from the Hints
    panel does: `hints_used` and the panel agree with what the tutor said."""
    rung = offline_rung_given(request)
    if rung is None or exercise_id is None:
        return
    exercise = await exercises.exercise_by_id(session, exercise_id)
    if exercise is None:
        return
    assignment = await lifecycle.for_work(session, res, user, exercise)
    if assignment.hints_used <= rung:
        assignment.hints_used = min(rung + 1, len(exercise.hints))
        await session.flush()
