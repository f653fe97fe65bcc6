"""The job a launcher receives: code, tests, limits and the run's verdict nonce."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from typing import Any, Literal

from koan.grading.sandbox.harness.run_python import precompile
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
            **_compiled(language, tests),
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
            **_compiled(language, tests),
        }
    ).encode()


def _compiled(language: Language, tests: str) -> dict[str, Any]:
    """Python tests go with their code, compiled here once per tests (`precompile`): a run
    would otherwise parse and compile them on every grading."""
    if language != "python":
        return {}
    compiled = _precompiled(tests)
    return {} if compiled is None else {"compiled": compiled}


@functools.lru_cache(maxsize=256)
def _precompiled(tests: str) -> dict[str, Any] | None:
    return precompile(tests)
