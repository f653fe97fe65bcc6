"""The leak guard: does a tutor reply give the exercise away? Proved by running it.

A reply leaks when it reproduces most of the reference solution (`koan.llm.leak_guard`, scored
over everything the learner has been shown in the conversation), or when what it suggests turns
the learner's failing attempt into one that passes a test it failed: the candidate programs of
`koan.llm.patches` are run against the exercise's tests by a runner the caller provides (the
grading sandbox; this package knows nothing of it).
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import structlog

from koan.llm import encodings, patches
from koan.llm.leak_guard import DEFAULT_THRESHOLD, leak_score

log = structlog.get_logger(__name__)


class Strictness(enum.StrEnum):
    """How much code the tutor may show (KOAN_TUTOR_STRICTNESS, per class later)."""

    SOCRATIC = "socratic"  # no working fix, no solution code
    HINTS = "hints"  # snippets that teach a construct are fine, a working fix is not
    OPEN = "open"  # code and a corrected line are fine, the whole solution is not


@dataclass(frozen=True, slots=True)
class Trial:
    """Candidate programs run against the exercise's tests, in order, until one fixes it."""

    fixed_by: int | None  # the first program that passes a test the attempt failed
    tried: int  # programs that ran (those after `fixed_by` did not)


# Runs programs in turn against the exercise's tests, stopping at the first that passes a test
# of `failed` (when `failed` is None: the first that passes every test); None when they could
# not be run (the sandbox busy or down).
Runner = Callable[[Sequence[str], frozenset[str] | None], Awaitable[Trial | None]]


class KnownPrograms:
    """What running a program against an exercise's tests showed: it fixed a failing test
    (True) or ran clean (False). Bounded: the least recently used go first.

    A `scope` names what a program was run against (the tests, the failed ones, the limits);
    a suggestion the model makes again (in a later reply, a regenerated draft, another
    conversation) is then known without running it again.
    """

    def __init__(self, size: int = 4096) -> None:
        self._known: OrderedDict[bytes, bool] = OrderedDict()
        self._size = size

    @staticmethod
    def key(scope: str, program: str) -> bytes:
        """The key of one program in one scope."""
        digest = hashlib.sha256(scope.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(program.encode("utf-8", "surrogatepass"))
        return digest.digest()

    def get(self, key: bytes) -> bool | None:
        """True: it fixes; False: it ran clean; None: not known."""
        fixed = self._known.get(key)
        if fixed is not None:
            self._known.move_to_end(key)
        return fixed

    def put(self, key: bytes, fixed: bool) -> None:
        """Remember what a run showed."""
        self._known[key] = fixed
        self._known.move_to_end(key)
        while len(self._known) > self._size:
            self._known.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The learner's code and the tests it failed (None: not known, e.g. the starter code)."""

    code: str
    failed: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's decision on one reply."""

    leak: bool
    reason: str = ""  # "solution" or "fix"
    evidence: str = ""  # what gave it away, for the regeneration instruction
    runs: int = 0


CLEAN = Verdict(False)


@dataclass(frozen=True)
class ExerciseSecrets:
    """What a reply about one exercise must not give away."""

    solution: str
    starter: str
    language: str
    attempt: Attempt | None = None
    threshold: float = DEFAULT_THRESHOLD
    strictness: Strictness = Strictness.SOCRATIC
    cap: int = patches.DEFAULT_CAP
    shown: tuple[str, ...] = field(default_factory=tuple)  # earlier replies in the conversation

    @functools.cached_property
    def known_words(self) -> frozenset[str]:
        """The words the exercise's code is written in (see `encodings.vocabulary`)."""
        attempt = self.attempt.code if self.attempt else ""
        return encodings.vocabulary(self.solution, self.starter, attempt)

    def read(self, text: str) -> str:
        """A reply as the learner reads it: as shown, with what it encodes decoded."""
        attempt = self.attempt.code if self.attempt else ""
        return encodings.revealed(patches.visible(text), self.known_words, attempt)

    def solution_score(self, reply: str) -> float:
        """How much of the solution the learner will have seen, this reply included: the reply
        alone, or what it adds to what they were shown before, when that did not give the
        solution away already (once it has, a reply that quotes it adds nothing: withholding
        every reply after it would only stop the teaching)."""
        score = self._score(reply, self.starter)
        earlier = self._earlier_code()
        # Added up, the learner's own code counts as theirs: replies quoting a line of it each
        # would otherwise add up to the solution their attempt nearly is.
        known = "\n".join(x for x in (self.starter, self.attempt and self.attempt.code) if x)
        if earlier and self._score(_fenced(earlier), known) < self.threshold:
            mine = patches.code_blocks(reply) + _long_spans(reply)
            score = max(score, self._score(_fenced([*earlier, *mine]), known))
        return score

    def _score(self, text: str, known: str) -> float:
        return leak_score(text, self.solution, self.language, starter=known or None)

    def _earlier_code(self) -> list[str]:
        """The code of the replies shown before (socratic: they add up)."""
        if self.strictness is not Strictness.SOCRATIC:
            return []
        earlier = [code for text in self.shown for code in patches.code_blocks(text)]
        return earlier + [s for text in self.shown for s in _long_spans(text)]


def _fenced(blocks: Sequence[str]) -> str:
    return "\n\n".join(f"```\n{c}\n```" for c in blocks)


def _long_spans(text: str) -> list[str]:
    return [s for s in patches._SPAN.findall(text) if len(s) >= 12]


def needs_check(reply: str, secrets: ExerciseSecrets) -> bool:
    """Whether the reply holds anything to check (prose alone costs nothing; code written
    plainly in it, in the exercise's words, is code)."""
    if patches.has_code(reply):
        return True
    attempt = secrets.attempt.code if secrets.attempt else ""
    return bool(attempt) and patches.bare_spans(reply, attempt) != reply


async def check(
    reply: str,
    secrets: ExerciseSecrets,
    runner: Runner | None,
    tried: set[str] | None = None,
) -> Verdict:
    """Whether `reply` leaks: solution code, or a fix that makes a failing test pass (open:
    only the solution, a corrected line is what the learner asked for).

    `tried` holds programs already run without fixing anything (a streamed reply is checked
    as it grows): they are not run again, and the ones run clean now are added.
    """
    # Read as the learner reads it: no code hidden in entities, invisible or look-alike letters,
    # or in an encoding they undo in a moment.
    reply = secrets.read(reply)
    if not needs_check(reply, secrets):
        return CLEAN
    if secrets.shown:
        secrets = replace(secrets, shown=tuple(secrets.read(text) for text in secrets.shown))
    score = secrets.solution_score(reply)
    if score >= secrets.threshold:
        return Verdict(True, "solution", _first_code(reply))
    if secrets.strictness is Strictness.OPEN:
        return CLEAN  # a working fix is what open allows: nothing to run
    attempt = secrets.attempt
    if runner is None or attempt is None or attempt.failed == frozenset():
        return CLEAN
    found = patches.candidates(
        reply, attempt.code, secrets.language, cap=secrets.cap, earlier=secrets.shown
    )
    if tried is not None:
        found = [c for c in found if c.program not in tried]
    if not found:
        return CLEAN
    return await _run(found, attempt, runner, tried)


async def _run(
    found: Sequence[patches.Candidate], attempt: Attempt, runner: Runner, tried: set[str] | None
) -> Verdict:
    """Run the candidates in one trial, which stops at the first that fixes a failing test."""
    try:
        trial = await runner([c.program for c in found], attempt.failed)
    except Exception:
        log.warning("tutor.leak_check_run_failed", exc_info=True)
        return CLEAN
    if trial is None:
        return CLEAN
    if trial.fixed_by is not None:
        return Verdict(True, "fix", found[trial.fixed_by].evidence, runs=trial.tried)
    if tried is not None:
        tried.update(c.program for c in found[: trial.tried])
    return Verdict(False, runs=trial.tried)


def _first_code(reply: str) -> str:
    blocks = patches.code_blocks(reply)
    return blocks[0] if blocks else ""


def regenerate_instruction(verdict: Verdict, strictness: Strictness) -> str:
    """What the model is told after a withheld draft: what gave it away, and what to do."""
    what = (
        "it reproduced the reference solution"
        if verdict.reason == "solution"
        else "what it suggested makes the learner's failing test pass, so it was a working fix"
    )
    evidence = verdict.evidence.strip()
    if len(evidence) > 300:
        evidence = evidence[:300] + "…"
    quoted = f"\nThe part that gave it away:\n{evidence}\n" if evidence else "\n"
    if strictness is Strictness.OPEN:
        return (
            f"IMPORTANT: your previous draft was withheld because {what}.{quoted}"
            "At this level a corrected line or a small snippet is fine, but never the whole "
            "solution. Point to the part that needs to change, show at most that part, and let "
            "the learner write the rest."
        )
    allowed = (
        "A snippet that teaches a construct on an unrelated example is fine, but nothing the "
        "learner could paste into their code."
        if strictness is Strictness.HINTS
        else "Write no code at all this time, no inline code that changes their code, and no "
        "corrected line."
    )
    return (
        f"IMPORTANT: your previous draft was withheld because {what}.{quoted}"
        f"{allowed} Do not name the exact change either. Explain in words what to look at, "
        "and ask one guiding question."
    )
