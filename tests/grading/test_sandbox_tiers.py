"""Every tier grades correctly: the mechanisms of the lower tiers are forced one set at a time.

On a machine where a mechanism is missing (no root, no bubblewrap) the sets needing it are
skipped with the reason; CI has them all, so there every set runs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from koan.grading.sandbox import Limits, Sandbox, SandboxConfig, Tier
from koan.grading.sandbox.features import Features
from tests.grading.conftest import ADD_SOLUTION, ADD_TESTS, IN_CI, grade_python

BWRAP = shutil.which("bwrap")
ROOT = os.geteuid() == 0
FEATURE_SETS = {
    "full": Features(uid_switch=True, bubblewrap=BWRAP, seccomp=True),
    "namespaces": Features(uid_switch=True, bubblewrap=BWRAP, seccomp=False),
    "rlimits-uid-seccomp": Features(uid_switch=True, bubblewrap=None, seccomp=True),
    "rlimits-only": Features(uid_switch=False, bubblewrap=None, seccomp=False),
}


@pytest_asyncio.fixture(params=list(FEATURE_SETS), scope="module", loop_scope="session")
async def forced(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    features = FEATURE_SETS[request.param]
    needs_root = features.uid_switch and not ROOT
    needs_bwrap = request.param in {"full", "namespaces"} and not BWRAP
    if needs_root or needs_bwrap:
        if IN_CI:
            pytest.fail(f"CI must support the {request.param} mechanisms (root, bubblewrap)")
        pytest.skip(f"{request.param} needs root and bubblewrap")
    box = Sandbox(SandboxConfig(slots=1, min_tier=Tier.RLIMITS), features=features)
    await box.start()
    try:
        yield box
    finally:
        await box.close()


async def test_every_tier_grades_pass_fail_and_error(forced: Sandbox) -> None:
    assert (await grade_python(forced, ADD_SOLUTION, ADD_TESTS)).status == "passed"
    assert (
        await grade_python(forced, "def add(a, b):\n    return 0\n", ADD_TESTS)
    ).status == "failed"
    assert (await grade_python(forced, "def add(a, b)\n", ADD_TESTS)).status == "error"


async def test_every_tier_reports_its_tier_and_isolates_the_uid(forced: Sandbox) -> None:
    code = "import os\nprint(os.getuid())\n" + ADD_SOLUTION

    report = await grade_python(forced, code, ADD_TESTS)

    assert report.tier == forced.tier
    assert forced.features is not None
    if forced.features.uid_switch:
        assert int(report.stdout) in forced.slot_uids
    else:
        assert int(report.stdout) == os.geteuid()


async def test_every_tier_kills_a_run_past_its_wall_clock(forced: Sandbox) -> None:
    # Killing differs by tier (kill(-1) as the slot uid, or the process group without one).
    code = "import time\ndef add(a, b):\n    time.sleep(60)\n"

    report = await grade_python(forced, code, ADD_TESTS, Limits(wall_s=0.5))

    assert report.status == "timeout"
    assert (await grade_python(forced, ADD_SOLUTION, ADD_TESTS)).status == "passed"


async def test_a_lost_launcher_is_replaced(forced: Sandbox) -> None:
    zygote = forced._slots[0].zygote
    launcher = zygote._process
    assert launcher is not None
    os.kill(launcher.pid, signal.SIGKILL)  # a crash between two runs
    await launcher.wait()
    for _ in range(500):
        if not zygote.alive:
            break
        await asyncio.sleep(0.01)

    report = await grade_python(forced, ADD_SOLUTION, ADD_TESTS)

    assert report.status == "passed"


@pytest.mark.parametrize("tier", list(FEATURE_SETS))
def test_closing_lets_the_launcher_leave_on_its_own_under_uvloop(tier: str) -> None:
    # `koan serve` runs on uvloop: a launcher that never saw end of file on its socket would
    # be killed after a grace period (seconds added to every deploy) instead of leaving.
    import uvloop

    features = FEATURE_SETS[tier]
    if (features.uid_switch and not ROOT) or (features.bubblewrap and not BWRAP):
        if IN_CI:
            pytest.fail(f"CI must support the {tier} mechanisms (root, bubblewrap)")
        pytest.skip(f"{tier} needs root and bubblewrap")

    async def graded_then_closed() -> tuple[str, int | None]:
        box = Sandbox(SandboxConfig(slots=1, min_tier=Tier.RLIMITS), features=features)
        await box.start()
        launcher = box._slots[0].zygote._process
        assert launcher is not None
        status = (await grade_python(box, ADD_SOLUTION, ADD_TESTS)).status
        await box.close()
        return status, launcher.returncode

    assert uvloop.run(graded_then_closed()) == ("passed", 0)  # exit 0: not killed


# Shared memory the run makes and never removes: SysV segments, a POSIX shm file, a message
# queue. Nothing of it may outlive the run, on any tier that has a uid of its own or seccomp.
LEAK_SIZE = 96 << 20
SHM_KEY = 0x4B4F414E
LEAK = f"""\
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
SIZE = {LEAK_SIZE}


def leave_shared_memory():
    made = []
    shmid = libc.shmget({SHM_KEY}, SIZE, 0o1666)
    if shmid >= 0:
        address = libc.shmat(shmid, None, 0)
        if address not in (None, ctypes.c_void_p(-1).value):
            ctypes.memset(address, 1, SIZE)
            made.append("sysv")
    try:
        fd = os.open("/dev/shm/koan-leak", os.O_CREAT | os.O_RDWR, 0o666)
        os.write(fd, b"x" * (SIZE // 4))
        made.append("posix")
    except OSError:
        pass
    if libc.mq_open(b"/koan-leak", os.O_CREAT | os.O_RDWR, 0o666, None) >= 0:
        made.append("mqueue")
    print(made)
"""
LEAK_TESTS = (
    "from solution import leave_shared_memory\n\ndef test_leave():\n    leave_shared_memory()\n"
)
FIND = f"""\
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)


def test_nothing_left():
    assert libc.shmget({SHM_KEY}, 0, 0) == -1, "the earlier run's segment is still there"
    assert not os.path.exists("/dev/shm/koan-leak")
    assert libc.mq_open(b"/koan-leak", os.O_RDONLY) == -1
"""


def host_shmem_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Shmem:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no Shmem in /proc/meminfo")


@pytest.mark.parametrize("tier", ["full", "namespaces", "rlimits-uid-seccomp", "rlimits-uid"])
async def test_shared_memory_does_not_outlive_the_run(tier: str) -> None:
    features = {**FEATURE_SETS, "rlimits-uid": Features(True, None, False)}[tier]
    if not ROOT or (features.bubblewrap and not BWRAP):
        if IN_CI:
            pytest.fail(f"CI must support the {tier} mechanisms (root, bubblewrap)")
        pytest.skip(f"{tier} needs root and bubblewrap")
    # Native calls (ctypes) allowed: the test is about the kernel layers under the interpreter.
    # No spare node: one starting in the background would add to the host's shared memory.
    config = SandboxConfig(slots=1, min_tier=Tier.RLIMITS, python_native=True, js_spare=False)
    box = Sandbox(config, features=features)
    await box.start()
    try:
        before = host_shmem_bytes()

        # A name of this run's own: tests in other workers leak theirs at the same time.
        name = f"koan-leak-{uuid.uuid4().hex[:12]}"
        leaked = await grade_python(
            box, LEAK.replace("koan-leak", name), LEAK_TESTS, Limits(memory_mb=512)
        )

        assert leaked.status == "passed", leaked
        made = leaked.stdout
        if features.seccomp:
            assert "sysv" not in made  # refused outright
            assert "mqueue" not in made
        if features.bubblewrap:
            assert "posix" not in made  # /dev/shm is read-only inside
        # Freeing a dead IPC namespace is deferred to a kernel worker: poll, bounded.
        # The host's Shmem moves with other processes too (a browser in another worker freeing
        # its own), so the file's removal after the run is waited for on its own.
        for _ in range(200):
            grown = host_shmem_bytes() - before
            if grown < LEAK_SIZE // 8 and not os.path.exists(f"/dev/shm/{name}"):
                break
            await asyncio.sleep(0.02)
        assert grown < LEAK_SIZE // 8
        assert not os.path.exists(f"/dev/shm/{name}")
        found = await grade_python(box, "", FIND.replace("koan-leak", name))
        assert found.status == "passed", found
    finally:
        await box.close()


async def test_a_run_cannot_read_its_own_memory_through_proc(forced: Sandbox) -> None:
    # Below NAMESPACES the host's /proc is there: /proc/self/mem would hold the verdict nonce.
    code = """
import os
def add(a, b):
    for path in ("/proc/self/mem", "/proc/self/maps", "/proc"):
        try:
            os.close(os.open(path, os.O_RDONLY))
        except (OSError, ValueError):
            continue
        return 0
    try:
        os.symlink("/proc/self/mem", "mem")
    except (OSError, ValueError):
        return a + b
    return 0
"""

    report = await grade_python(forced, code, ADD_TESTS)

    assert report.status == "passed", report
