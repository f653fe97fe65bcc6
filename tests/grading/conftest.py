"""Fixtures for the grading sandbox: one real Sandbox per test session, on this machine's tier.

In CI (CI=true) the machine must reach Tier.FULL: a weaker tier fails the run instead of quietly
testing less. Elsewhere the suite runs at whatever tier the machine reaches, except the hostile
battery, which needs a uid of its own to be safe to run at all (a kill(-1) as root would take
the whole machine down) and says so when it skips.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from koan.grading.sandbox import GradeReport, Limits, Sandbox, SandboxConfig, Tier

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

ADD_SOLUTION = "def add(a, b):\n    return a + b\n"
ADD_TESTS = """\
from solution import add


def test_small():
    assert add(1, 2) == 3


def test_negative():
    assert add(-1, -2) == -3, "negative numbers add too"
"""


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sandbox() -> AsyncIterator[Sandbox]:
    """A two-slot sandbox shared by the grading tests."""
    box = Sandbox(SandboxConfig(slots=2, queue_size=16, min_tier=Tier.RLIMITS))
    await box.start()
    if IN_CI:
        assert box.tier == Tier.FULL, f"CI must grade at Tier.FULL, this machine gives {box.tier}"
    try:
        yield box
    finally:
        await box.close()


@pytest.fixture
def hostile_sandbox(sandbox: Sandbox) -> Sandbox:
    """The shared sandbox, for programs that attack it: needs a uid per slot to be safe."""
    if IN_CI:
        assert sandbox.tier == Tier.FULL
    elif sandbox.tier < Tier.NAMESPACES:
        pytest.skip(
            f"hostile programs need a uid per slot; this machine reaches {sandbox.tier.name} "
            "(run as root with bubblewrap installed)"
        )
    return sandbox


async def grade_python(
    sandbox: Sandbox, code: str, tests: str, limits: Limits | None = None
) -> GradeReport:
    """Grade a Python submission."""
    return await sandbox.grade(language="python", code=code, tests=tests, limits=limits)


async def assert_still_works(sandbox: Sandbox) -> None:
    """A normal exercise still grades correctly, and nothing of earlier runs is left running."""
    report = await grade_python(sandbox, ADD_SOLUTION, ADD_TESTS)
    assert report.status == "passed", report
    assert (report.passed, report.total) == (2, 2)
    await assert_nothing_left_running(sandbox)


async def assert_nothing_left_running(sandbox: Sandbox) -> None:
    """No process runs as a slot uid once the runs so far are over.

    A launcher reports a run before its sweep (a helper running as the slot uid, killing
    whatever is left) has finished, and the other slot may still be sweeping: give the sweeps
    a moment. What a run really left behind would outlive this bound. A slot's spare node
    (started after the sweep, for the next JavaScript run) is ended first."""
    await sandbox.discard_spares()
    for _ in range(250):
        left = processes_of(sandbox.slot_uids)
        if not left:
            break
        await asyncio.sleep(0.02)
    assert left == []


def processes_of(uids: tuple[int, ...]) -> list[int]:
    """Pids of live (not zombie) processes whose real uid is one of uids."""
    if not uids:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        real_uid = int(fields.get("Uid", "-1").split()[0])
        if real_uid in uids and not fields.get("State", "").strip().startswith("Z"):
            found.append(int(entry.name))
    return found
