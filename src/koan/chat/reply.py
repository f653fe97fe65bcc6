"""The tutor's reply: the request for the model, and the answer checked against the solution."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koan.chat import repository as chat_repository
from koan.chat.context import (
    SHOWN_LIMIT,
    STRICTER,
    ReplyGuard,
    exercise_context,
    hint_style_answer,
    learner_profile,
    open_work_guard,
    strictness_of,
)
from koan.chat.hints import count_offline_rung
from koan.chat.policy import ClassPolicy, PolicyLookup
from koan.errors import BudgetExceeded, Forbidden, TutorUnavailable
from koan.exercises import repository as exercises
from koan.llm import (
    ChatMessage,
    Completion,
    CompletionRequest,
    TutorContext,
    build_system_prompt,
    patches,
    trim_history,
)
from koan.llm.leak_check import Strictness, Verdict, regenerate_instruction
from koan.llm.offline import OFFLINE_MODEL
from koan.models import Conversation, LLMCall, User
from koan.models import LearnerProfile as LearnerProfileRow
from koan.ops import metrics
from koan.resources import Resources
from koan.tutor_gateway import calls
from koan.tutor_gateway.budgets import Limit

log = structlog.get_logger(__name__)

# Enough turns to fill any context window; trim_history keeps what fits.
HISTORY_LIMIT = 200
CHAT_TEMPERATURE = 0.3


@dataclass
class ReplyTarget:
    """Who asks, in which of their conversations, with the profile the prompt is built from,
    the conversation's newest messages (as of `conversation.message_count`), and what the
    learner's classes say about the tutor for its exercise (None: the server's settings)."""

    user: User
    conversation: Conversation
    profile: LearnerProfileRow | None
    history: list[tuple[str, str]] = field(default_factory=list)
    policy: ClassPolicy | None = None
    # The classes' controls for any of the learner's exercises (a conversation about none is
    # guarded over their open exercises, each as strictly as in its own conversation).
    lookup: PolicyLookup | None = None


class TutorOff(Forbidden):
    code = "TutorOff"


@dataclass
class Prepared:
    """The request for the model, and the guard: the exercise's, or in a conversation about
    none, that of the learner's open exercises (None when there is nothing to give away)."""

    conversation_id: uuid.UUID
    exercise_id: uuid.UUID | None
    request: CompletionRequest
    guard: ReplyGuard | None = None
    # The class budgets every call for this reply also counts against.
    limits: tuple[Limit, ...] = ()


async def prepare(
    session: AsyncSession, res: Resources, target: ReplyTarget, question: str
) -> Prepared:
    """System prompt from the profile and the exercise, then the history that fits, ending
    with `question` (read before the question is stored, so one commit covers the request)."""
    settings = res.settings
    user, conversation = target.user, target.conversation
    profile = await learner_profile(session, user, target.profile)
    context: TutorContext | None = None
    guard: ReplyGuard | None = None
    exercise_id = conversation.exercise_id
    policy = target.policy
    if policy is not None and policy.off:
        raise TutorOff(policy.off_reason or "Your class has switched the tutor off for now.")
    strictness = strictness_of(settings, policy.strictness if policy else None)
    if exercise_id is not None:
        exercise = await exercises.exercise_by_id(session, exercise_id)
        if exercise is not None:
            context, guard = await exercise_context(
                session, user, exercise, threshold=settings.llm_leak_threshold,
                strictness=strictness, sandbox=res.sandbox, known=res.known_programs,
            )  # fmt: skip
            # What the learner has been shown adds up: a solution handed out in parts leaks,
            # in this conversation or spread over their others about the exercise, hints and
            # conversations they deleted included.
            elsewhere: dict[uuid.UUID, list[str]] = {}
            if not res.llm.offline_only:  # Koan's own tutor writes no code: nothing to add up
                elsewhere = await chat_repository.shown_about(
                    session, user.id, guard.exercise_ids, besides=conversation.id, limit=SHOWN_LIMIT
                )
            guard = guard.with_shown(_replies(target.history), elsewhere)
    elif not res.llm.offline_only:  # Koan's own tutor writes no code: nothing to give away
        # About no exercise, the question may still be the learner's open exercise, pasted in.
        lookup = target.lookup

        async def strictness_for(exercise_id: uuid.UUID) -> Strictness:
            # At least as strict as in the exercise's own conversation: the strictest setting
            # needs no class's word.
            if strictness is Strictness.SOCRATIC or lookup is None:
                return strictness
            found = await lookup(session, user, exercise_id, now=res.clock.now())
            own = strictness_of(settings, found.strictness if found else None)
            return max(strictness, own, key=STRICTER.index)

        guard = await open_work_guard(
            session, user, threshold=settings.llm_leak_threshold, strictness_for=strictness_for,
            sandbox=res.sandbox, known=res.known_programs,
        )  # fmt: skip
        if guard is not None:
            elsewhere = await chat_repository.shown_about(
                session, user.id, guard.exercise_ids, besides=conversation.id, limit=SHOWN_LIMIT
            )
            guard = guard.with_shown(_replies(target.history), elsewhere)
    system = build_system_prompt(
        profile=profile,
        context=context,
        mode="chat",
        strictness=strictness,
        teacher=policy.system_prompt() if policy is not None else "",
    )
    history = [ChatMessage("user" if role == "user" else "assistant", content)
               for role, content in target.history if content]  # fmt: skip
    history.append(ChatMessage("user", question))
    messages = trim_history(
        system, history, settings.llm_context_tokens, settings.llm_reply_max_tokens
    )
    request = CompletionRequest(
        messages=messages,
        temperature=CHAT_TEMPERATURE,
        max_tokens=settings.llm_reply_max_tokens,
        purpose="chat",
        context=context,
    )
    limits = tuple(policy.budgets) if policy is not None else ()
    return Prepared(conversation.id, exercise_id, request, guard, limits)


def _replies(history: list[tuple[str, str]]) -> list[str]:
    return [text for role, text in history if role != "user"]


async def remember_shown(
    session: AsyncSession,
    res: Resources,
    user_id: uuid.UUID,
    prepared: Prepared,
    text: str,
    model: str,
    *,
    conversation_id: uuid.UUID | None,
) -> None:
    """Keep the code a delivered reply showed, towards every exercise its guard checked it
    against, so that it counts in the learner's later replies and hints about them, even once
    its conversation (`conversation_id`, None if gone) is deleted."""
    guard = prepared.guard
    if guard is None or model == OFFLINE_MODEL:  # Koan's own tutor writes no code
        return
    code = patches.shown_code(text)
    if code:
        await chat_repository.add_shown(
            session, user_id, guard.exercise_ids, code, conversation_id=conversation_id,
            now=res.clock.now(),
        )  # fmt: skip


def _stricter(request: CompletionRequest, instruction: str) -> CompletionRequest:
    system, *rest = request.messages
    return replace(
        request,
        messages=[ChatMessage("system", f"{system.content}\n\n{instruction}"), *rest],
        temperature=0.0,
    )


@dataclass
class Answer:
    """A whole reply, with the tokens and cost of every draft it took."""

    text: str
    model: str
    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    leak_caught: bool = False
    # The record of the first draft's call, stored with the reply (`service.store_answer`).
    record: LLMCall | None = None

    def add(self, completion: Completion) -> None:
        self.input_tokens += completion.usage.input_tokens
        self.output_tokens += completion.usage.output_tokens
        self.cost_usd += completion.cost_usd


async def answer(session: AsyncSession, res: Resources, user: User, prepared: Prepared) -> Answer:
    """Ask the model; for an exercise, check the reply (the solution, or a fix proved by running
    it), regenerate once with an instruction naming what gave it away, and replace a reply that
    still leaks by a hint-style nudge."""
    exercise_id, conversation_id = prepared.exercise_id, prepared.conversation_id
    first = await calls.complete(
        session, res, user_id=user.id, request=prepared.request,
        exercise_id=exercise_id, conversation_id=conversation_id, limits=prepared.limits,
        record_later=True,
    )  # fmt: skip
    result = Answer(first.completion.text, first.completion.model, first.completion.provider)
    result.add(first.completion)
    result.record = first.record
    guard = prepared.guard
    if guard is None:
        return result
    if first.completion.model == OFFLINE_MODEL:
        # Koan's own tutor writes no code; a hint rung it shows counts as used.
        await count_offline_rung(session, res, user, exercise_id, prepared.request)
        return result
    verdict = await guard.check(first.completion.text)
    if not verdict.leak:
        return result
    first.record.leak_caught = True
    caught(verdict, exercise_id)
    await replace_leak(session, res, user.id, prepared, verdict, result)
    return result


def caught(verdict: Verdict, exercise_id: uuid.UUID | None) -> None:
    """Count and log a first draft the guard withheld."""
    metrics.leak_caught()
    log.warning(
        "tutor.leak_caught", purpose="chat", stage="first", reason=verdict.reason,
        exercise_id=str(exercise_id),
    )  # fmt: skip


async def replace_leak(
    session: AsyncSession,
    res: Resources,
    user_id: uuid.UUID,
    prepared: Prepared,
    verdict: Verdict,
    result: Answer,
) -> None:
    """After a withheld draft: ask once more with an instruction naming what gave it away,
    and check that draft too; one that still leaks (or none at all: the provider failed, the
    budget ran out) becomes a hint-style nudge. `result` gets the text, and the second call's
    tokens and cost."""
    guard = prepared.guard
    assert guard is not None
    result.leak_caught = True
    instruction = regenerate_instruction(verdict, guard.strictness)
    try:
        second = await calls.complete(
            session, res, user_id=user_id, request=_stricter(prepared.request, instruction),
            exercise_id=prepared.exercise_id, conversation_id=prepared.conversation_id,
            limits=prepared.limits,
        )  # fmt: skip
    except (TutorUnavailable, BudgetExceeded):
        second = None
    if second is not None:
        result.add(second.completion)
        result.model, result.provider = second.completion.model, second.completion.provider
        again = await guard.check(second.completion.text)
        if not again.leak:
            result.text = second.completion.text
            await session.flush()
            return
        second.record.leak_caught = True
        metrics.leak_caught()
        log.warning("tutor.leak_caught", purpose="chat", stage="regenerated", reason=again.reason)
    result.text = hint_style_answer(guard)
    await session.flush()
