"""Hostile submissions: each is contained, gets a sensible status, and the sandbox keeps working.

Every test ends by grading a normal exercise and checking that nothing the attack started is
still running as a slot uid. That this test process is still here to check is the other half.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from koan.grading.sandbox import Limits, Sandbox, SandboxConfig, Tier
from tests.grading.conftest import (
    ADD_SOLUTION,
    ADD_TESTS,
    IN_CI,
    assert_nothing_left_running,
    assert_still_works,
    grade_python,
)

ROOT = Path(__file__).resolve().parents[2]
RUN_IT = "from solution import attack\n\ndef test_attack():\n    attack()\n"
SHORT = Limits(cpu_s=1, wall_s=2)


def attack(body: str) -> str:
    """A solution whose attack() runs body (indented into the function)."""
    indented = "".join(f"    {line}\n" for line in body.strip("\n").splitlines())
    return f"def attack():\n{indented}"


async def test_infinite_loop_times_out(hostile_sandbox: Sandbox) -> None:
    # Wall clock far above the CPU limit: on a busy machine the CPU limit must still be the one hit.
    limits = Limits(cpu_s=1, wall_s=30)

    report = await grade_python(hostile_sandbox, attack("while True:\n    pass"), RUN_IT, limits)

    assert report.status == "timeout"
    assert "CPU" in report.tests[0].message
    await assert_still_works(hostile_sandbox)


async def test_sleeping_past_the_wall_clock_times_out(hostile_sandbox: Sandbox) -> None:
    code = "import time\n" + attack("time.sleep(60)")

    report = await grade_python(hostile_sandbox, code, RUN_IT, Limits(wall_s=1))

    assert report.status == "timeout"
    assert "longer than 1 s" in report.tests[0].message
    await assert_still_works(hostile_sandbox)


@pytest.mark.parametrize(
    "body",
    [
        "block = bytearray(4 * 1024 ** 3)",
        "hoard = []\nwhile True:\n    hoard.append(' ' * 10 ** 6)",
    ],
    ids=["one-huge-allocation", "growing-list"],
)
async def test_memory_bomb_hits_the_memory_limit(hostile_sandbox: Sandbox, body: str) -> None:
    report = await grade_python(hostile_sandbox, attack(body), RUN_IT, Limits(memory_mb=128))

    assert report.status == "memory"
    assert report.tests[0].message.startswith("MemoryError")
    await assert_still_works(hostile_sandbox)


@pytest.mark.parametrize(
    "body",
    [
        "import os\nwhile True:\n    os.fork()",
        "import subprocess\nfor _ in range(100):\n    subprocess.Popen(['sleep', '60'])",
        "import os\nos.posix_spawn('/bin/sh', ['sh', '-c', 'sleep 60'], {})",
    ],
    ids=["fork-loop", "subprocess", "posix-spawn"],
)
async def test_fork_bombs_are_refused(hostile_sandbox: Sandbox, body: str) -> None:
    report = await grade_python(hostile_sandbox, attack(body), RUN_IT, SHORT)

    assert report.status in {"failed", "error", "timeout"}
    assert report.passed == 0
    if hostile_sandbox.tier == Tier.FULL:
        assert report.status == "failed"
        assert report.tests[0].message.startswith("PermissionError")
    await assert_still_works(hostile_sandbox)


async def test_detached_background_process_does_not_outlive_the_run(
    hostile_sandbox: Sandbox,
) -> None:
    body = """
import os, time
try:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(600)
        os._exit(0)
except OSError as exc:
    print("refused:", exc)
"""
    report = await grade_python(hostile_sandbox, attack(body), RUN_IT, SHORT)

    await assert_nothing_left_running(hostile_sandbox)
    if hostile_sandbox.tier == Tier.FULL:
        assert report.stdout.startswith("refused:")
    await assert_still_works(hostile_sandbox)


async def test_a_flood_of_files_is_stopped_by_the_tmpfs(hostile_sandbox: Sandbox) -> None:
    body = "for i in range(1_000_000):\n    open(f'f{i}', 'w').write('x' * 1024)"

    report = await grade_python(hostile_sandbox, attack(body), RUN_IT, Limits(disk_mb=4))

    assert report.status == "failed"
    assert report.tests[0].message.startswith("OSError")  # no space / no inodes left
    await assert_still_works(hostile_sandbox)


async def test_one_huge_file_is_stopped_by_the_file_size_limit(hostile_sandbox: Sandbox) -> None:
    body = (
        "with open('big', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'x' * 2 ** 20)"
    )

    report = await grade_python(hostile_sandbox, attack(body), RUN_IT, Limits(disk_mb=8))

    assert report.status == "failed"
    assert report.tests[0].message.startswith("OSError")  # EFBIG or ENOSPC
    await assert_still_works(hostile_sandbox)


async def test_host_password_file_is_not_readable(hostile_sandbox: Sandbox) -> None:
    host_passwd = Path("/etc/passwd").read_text()
    body = """
for path in ('/etc/passwd', '/etc/shadow', '/root/.bashrc', '/proc/1/environ'):
    try:
        print(open(path).read())
    except OSError as exc:
        print(type(exc).__name__, path)
"""
    report = await grade_python(hostile_sandbox, attack(body), RUN_IT)

    assert report.status == "passed"
    first_host_line = host_passwd.splitlines()[0]
    assert first_host_line not in report.stdout
    assert "root:" not in report.stdout
    await assert_still_works(hostile_sandbox)


async def test_server_environment_and_files_stay_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh sandbox started with a secret in its environment and a database on disk."""
    secret = f"koan-secret-{uuid.uuid4()}"
    monkeypatch.setenv("KOAN_SECRET_KEY", secret)
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    database = var / f"grading-test-{uuid.uuid4().hex}.db"
    database.write_text(f"users table: {secret}")
    body = f"""
import os
print(dict(os.environ))
paths = [{str(database)!r}, '/proc/self/environ', '/proc/1/environ']
paths += ['/proc/%d/environ' % pid for pid in (os.getppid(), 1, 2, 3)]
paths += [{str(ROOT / "pyproject.toml")!r}, '/work/main/var', os.path.expanduser('~')]
for path in paths:
    try:
        print(open(path).read())
    except OSError as exc:
        print(type(exc).__name__, path)
"""
    box = Sandbox(SandboxConfig(slots=1, min_tier=Tier.RLIMITS))
    await box.start()
    try:
        if IN_CI:
            assert box.tier == Tier.FULL
        elif box.tier < Tier.NAMESPACES:
            pytest.skip(f"files of the server are readable below NAMESPACES ({box.tier.name})")
        report = await grade_python(box, attack(body), RUN_IT)
        assert report.status == "passed", report
        assert secret not in report.stdout
        assert "KOAN_SECRET_KEY" not in report.stdout
        assert "[project]" not in report.stdout  # the repository's pyproject.toml
        await assert_still_works(box)
    finally:
        await box.close()
        database.unlink()


async def test_connecting_to_a_loopback_listener_fails(hostile_sandbox: Sandbox) -> None:
    accepted: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append("connection")
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    body = f"""
import socket
targets = ((socket.AF_INET, ('127.0.0.1', {port})), (socket.AF_INET6, ('::1', {port})))
for family, address in targets:
    try:
        socket.socket(family, socket.SOCK_STREAM).connect(address)
        print('connected', address)
    except OSError as exc:
        print(type(exc).__name__)
"""
    try:
        report = await grade_python(hostile_sandbox, attack(body), RUN_IT)
        await asyncio.sleep(0)  # let the server accept anything that did arrive
    finally:
        server.close()
        await server.wait_closed()

    assert accepted == []
    assert "connected" not in report.stdout
    await assert_still_works(hostile_sandbox)


async def test_killing_the_parent_and_everyone_fails(hostile_sandbox: Sandbox) -> None:
    body = """
import os, signal
for pid in (os.getppid(), -1, 1, 0):
    try:
        os.kill(pid, signal.SIGKILL)
        print('sent', pid)
    except OSError as exc:
        print(type(exc).__name__, pid)
"""
    report = await grade_python(hostile_sandbox, attack(body), RUN_IT)

    # kill(0) is the run's own process group: it may end the run itself, nothing else.
    assert report.status in {"passed", "error"}
    assert "sent -1" not in report.stdout
    assert "sent 1" not in report.stdout.splitlines()
    await assert_still_works(hostile_sandbox)


async def test_a_hundred_megabytes_of_output_is_cut_off(hostile_sandbox: Sandbox) -> None:
    body = "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 1_000_000)"

    report = await grade_python(hostile_sandbox, attack(body), RUN_IT, Limits(output_bytes=4096))

    assert report.status == "output_limit"
    assert 0 < len(report.stdout) <= 4096
    await assert_still_works(hostile_sandbox)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def native_sandbox(sandbox: Sandbox) -> AsyncIterator[Sandbox]:
    """A sandbox whose runs may use ctypes: native code, to test the kernel layers themselves."""
    if sandbox.tier < Tier.NAMESPACES and not IN_CI:
        pytest.skip("hostile programs need a uid per slot (run as root with bubblewrap)")
    box = Sandbox(SandboxConfig(slots=1, min_tier=Tier.RLIMITS, python_native=True))
    await box.start()
    try:
        yield box
    finally:
        await box.close()


async def test_ctypes_is_refused_to_graded_code(hostile_sandbox: Sandbox) -> None:
    code = "import ctypes\n" + attack("return ctypes.string_at(id(1), 8)")

    report = await grade_python(hostile_sandbox, code, RUN_IT)

    assert report.status == "failed"
    assert "ctypes" in report.tests[0].message
    await assert_still_works(hostile_sandbox)


@pytest.mark.parametrize(
    "module", ["_testcapi", "_testinternalcapi", "_xxsubinterpreters", "_ctypes_test"]
)
async def test_cpythons_own_test_extensions_and_subinterpreters_are_refused(
    hostile_sandbox: Sandbox, module: str
) -> None:
    # C helpers with no audit event of their own, and interpreters none of the guard's hooks
    # watch: present wherever the standard library is (Debian ships them in it).
    imports = {
        "by its name": f"return importlib.import_module({module!r})",
        # Loaded from its file under a package's name: the extension is the same.
        "under another name": (
            f"found = importlib.machinery.PathFinder.find_spec({module!r})\n"
            f"spec = importlib.util.spec_from_file_location('x.{module}', found.origin)\n"
            "return importlib.util.module_from_spec(spec)"
        ),
    }
    for how, body in imports.items():
        code = "import importlib.machinery, importlib.util\n" + attack(body)

        report = await grade_python(hostile_sandbox, code, RUN_IT)

        assert report.status == "failed", how
        assert "ModuleNotFoundError" in report.tests[0].message, (how, report.tests[0].message)
        assert "grader" in report.tests[0].message, how
    await assert_still_works(hostile_sandbox)


async def test_raw_syscalls_through_ctypes_are_refused(native_sandbox: Sandbox) -> None:
    if native_sandbox.tier < Tier.FULL:
        pytest.skip("syscall filtering needs Tier.FULL")
    code = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
CALLS = {
    'socket(AF_INET)': (41, 2, 1, 0),
    'fork': (57,),
    'vfork': (58,),
    'clone(SIGCHLD)': (56, 17, 0, 0, 0, 0),
    'unshare(NEWUSER)': (272, 0x10000000),
    'ptrace(ATTACH, 1)': (101, 16, 1, 0, 0),
    'kill(-1)': (62, -1, 9),
    'mount': (165, b'none', b'/work', b'tmpfs', 0, 0),
    'bpf': (321, 0, 0, 0),
    'io_uring_setup': (425, 1, 0),
    'process_vm_readv': (310, 1, 0, 0, 0, 0, 0),
}

def attempts():
    return {name: libc.syscall(*args) for name, args in CALLS.items()}
"""
    tests = (
        "from solution import attempts\n\n"
        "def test_all_refused():\n"
        "    results = attempts()\n"
        "    assert all(value == -1 for value in results.values()), results\n"
    )

    report = await grade_python(native_sandbox, code, tests)

    assert report.status == "passed", report
    await assert_still_works(native_sandbox)


async def test_runs_hold_no_capabilities_at_all(native_sandbox: Sandbox) -> None:
    code = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
PR_CAPBSET_READ = 23

def bounding_set():
    return [cap for cap in range(41) if libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1]
"""
    tests = (
        "import os\nfrom solution import bounding_set\n\n"
        "def test_unprivileged():\n"
        "    assert os.getuid() != 0 and os.geteuid() != 0\n"
        "    assert os.getgroups() == []\n"
        "    assert bounding_set() == []\n"
    )

    report = await grade_python(native_sandbox, code, tests)

    assert report.status == "passed", report


async def test_a_32_bit_syscall_kills_the_run(native_sandbox: Sandbox) -> None:
    if native_sandbox.tier < Tier.FULL:
        pytest.skip("syscall filtering needs Tier.FULL")
    body = """
import ctypes, mmap
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(bytes([0xB8, 0x14, 0, 0, 0, 0xCD, 0x80, 0xC3]))  # mov eax, 20; int 0x80; ret
ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()
"""
    report = await grade_python(native_sandbox, attack(body), RUN_IT)

    assert report.status == "error"
    assert "SIGSYS" in report.tests[0].message
    await assert_still_works(native_sandbox)


async def test_a_ctypes_segfault_is_an_error(native_sandbox: Sandbox) -> None:
    code = "import ctypes\n" + attack("ctypes.string_at(0)")

    report = await grade_python(native_sandbox, code, RUN_IT)

    assert report.status == "error"
    assert "SIGSEGV" in report.tests[0].message
    await assert_still_works(native_sandbox)


async def test_runs_cannot_see_each_other(hostile_sandbox: Sandbox) -> None:
    # One run sleeps holding a secret; a concurrent run in the other slot looks for it.
    secret = uuid.uuid4().hex
    holder = f"import time\nSECRET = {secret!r}\nopen('mine.txt', 'w').write(SECRET)\n"
    holder += attack("time.sleep(0.5)")
    snoop = attack(
        """
import os
print(os.listdir('/'))
for root in ('/work', '/tmp', '/etc', '/koan'):
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            try:
                print(open(os.path.join(dirpath, name), errors='replace').read(4096))
            except OSError:
                pass
"""
    )
    holding = asyncio.create_task(grade_python(hostile_sandbox, holder, RUN_IT))
    await asyncio.sleep(0.1)
    report = await grade_python(hostile_sandbox, snoop, RUN_IT, Limits(output_bytes=1 << 20))
    await holding

    assert secret not in report.stdout
    await assert_still_works(hostile_sandbox)


async def test_the_suite_itself_is_unharmed(hostile_sandbox: Sandbox) -> None:
    report = await grade_python(hostile_sandbox, ADD_SOLUTION, ADD_TESTS)

    assert report.status == "passed"
    assert os.getppid() != 1  # our own parent (pytest's runner) is still there
