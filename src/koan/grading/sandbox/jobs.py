"""The job a launcher receives: code, tests, limits and the run's verdict nonce."""

from __future__ import annotations

import json

from koan.grading.sandbox.limits import Language, Limits, run_plan


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
