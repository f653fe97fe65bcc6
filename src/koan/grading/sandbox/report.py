"""What a grading run produced: per-test outcomes and an overall verdict."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

TestStatus = Literal["passed", "failed", "error"]
RunStatus = Literal["passed", "failed", "error", "timeout", "memory", "output_limit"]


class Tier(enum.IntEnum):
    """How strongly a run is isolated; higher is stronger."""

    NONE = 0  # nothing usable: refuse to grade
    RLIMITS = 1  # rlimits + setsid + clean environment + private temp dir
    NAMESPACES = 2  # + a uid per slot + bubblewrap namespaces, read-only root, tmpfs
    FULL = 3  # + seccomp filter on every run


@dataclass
class TestOutcome:
    """One test function's result, with the message a learner sees."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    status: TestStatus
    message: str = ""


@dataclass
class GradeReport:
    """The verdict on one submission."""

    status: RunStatus
    tests: list[TestOutcome] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    duration_ms: int = 0
    tier: Tier = Tier.NONE
    # False when the code could not be loaded (a syntax or import error), so no test started.
    tests_ran: bool = True

    @property
    def passed(self) -> int:
        """How many tests passed."""
        return sum(1 for test in self.tests if test.status == "passed")

    @property
    def total(self) -> int:
        """How many tests the exercise has (as far as the run got to know them)."""
        return len(self.tests)


CaseStatus = Literal["tests", "import", "timeout", "error", "tampered", "not_run"]


@dataclass(frozen=True)
class ProgramOutcome:
    """What one program of a trial did: how it ended, the tests it ran and those it passed.

    `tests`: every test it was to run reported; `import`: it did not load; `timeout`: it ran
    past its deadline; `error`: it stopped some other way; `tampered`: its records were forged
    or cut off (nothing it passed counts); `not_run`: the trial ended before its turn.
    """

    status: CaseStatus
    planned: tuple[str, ...] = ()
    passed: frozenset[str] = frozenset()


@dataclass
class TrialReport:
    """Programs tried in turn against the same tests (`Sandbox.try_programs`)."""

    outcomes: list[ProgramOutcome]
    stopped_at: int | None = None  # the program that met the stop rule, if one did
    duration_ms: int = 0
    tier: Tier = Tier.NONE
