"""The job a launcher receives: code, tests, limits and the run's verdict nonce."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Literal

from koan.grading.sandbox.limits import Language, Limits, run_plan

StopRule = Literal["any", "all", "never"]


def build_job(
    *,
    nonce: str,
    language: Language,
    code: str,
    tests: str,
    limits: Limits,
    js_memory_mb: int,
    native: bool = False,
) -> bytes:
    """Serialise one job for the launcher (it reaches the run through a memfd, never argv)."""
    return json.dumps(
        {
            "nonce": nonce,
            "language": language,
            "code": code,
            "tests": tests,
            "limits": run_plan(language, limits, js_memory_mb),
            "native": native,
        }
    ).encode()


def build_trial_job(
    *,
    nonce: str,
    language: Language,
    programs: Sequence[str],
    tests: str,
    only: Collection[str] | None,
    stop: StopRule,
    limits: Limits,
    case_wall_s: float,
    js_memory_mb: int,
    native: bool = False,
) -> bytes:
    """Serialise a trial: several programs tried in turn against the same tests."""
    return json.dumps(
        {
            "nonce": nonce,
            "language": language,
            "programs": list(programs),
            "tests": tests,
            "only": sorted(only) if only is not None else None,
            "stop": stop,
            "case_wall_s": case_wall_s,
            "limits": run_plan(language, limits, js_memory_mb),
            "native": native,
        }
    ).encode()
