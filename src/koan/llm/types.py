"""Value types shared by every LLM provider, the resilience layer and the chat service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeAlias

Role: TypeAlias = Literal["system", "user", "assistant"]
Purpose: TypeAlias = Literal["chat", "hint", "generation"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class FailingTest:
    """A test the learner's latest submission failed, with the grader's message."""

    name: str
    message: str


@dataclass(frozen=True, slots=True)
class TutorContext:
    """What the tutor knows about the exercise at hand; the offline tutor answers from it."""

    exercise_statement: str = ""
    # The ladder: the `hints_used` rungs taken as the learner was shown them (a rung the model
    # tailored in its text), the rest as authored.
    hints: tuple[str, ...] = ()
    hints_used: int = 0
    latest_code: str | None = None
    failing_tests: tuple[FailingTest, ...] = ()
    language: str = "python"
    question: str | None = None
    title: str = ""

    @classmethod
    def build(
        cls,
        *,
        exercise_statement: str = "",
        hints: list[str] | tuple[str, ...] = (),
        hints_used: int = 0,
        latest_code: str | None = None,
        failing_tests: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
        language: str = "python",
        question: str | None = None,
        title: str = "",
    ) -> TutorContext:
        """Build a context from plain lists and (name, message) pairs."""
        return cls(
            exercise_statement=exercise_statement,
            hints=tuple(hints),
            hints_used=max(0, hints_used),
            latest_code=latest_code,
            failing_tests=tuple(FailingTest(name, message) for name, message in failing_tests),
            language=language,
            question=question,
            title=title,
        )


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A provider-neutral request for one completion."""

    messages: Sequence[ChatMessage]
    model: str | None = None
    temperature: float = 0.2
    max_tokens: int = 512
    purpose: Purpose = "chat"
    json_schema: dict[str, Any] | None = None
    context: TutorContext | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens billed for one completion; `estimated` when the provider did not report them."""

    input_tokens: int
    output_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished reply with its accounting."""

    text: str
    model: str
    provider: str
    usage: Usage
    latency_ms: int
    finish_reason: str
    cost_usd: Decimal = field(default=Decimal("0"))
    # False when the model is missing from the price table, so cost_usd is a placeholder 0.
    priced: bool = True
    first_token_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A piece of reply text as it arrives, with the model and provider writing it (a stream
    broken off before its end is billed to them: the chain may have fallen back to another)."""

    delta: str
    model: str = ""
    provider: str = ""


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last item of every stream: the whole completion with usage and cost."""

    completion: Completion


StreamItem: TypeAlias = StreamChunk | StreamEnd
