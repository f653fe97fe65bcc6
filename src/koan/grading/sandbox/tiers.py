"""Finding out how strongly this machine can isolate a run.

Each candidate set of mechanisms is tried for real: a launcher is started with it and grades a
small self-check exercise whose tests assert the isolation took effect (the uid, a refused
socket and fork under seccomp, a read-only root without /proc under bubblewrap). The strongest
candidate whose self-check passes wins. Results are cached per interpreter and uid range.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import structlog

from koan.grading.sandbox.config import SandboxConfig
from koan.grading.sandbox.features import Features
from koan.grading.sandbox.jobs import build_job
from koan.grading.sandbox.limits import Limits
from koan.grading.sandbox.report import Tier
from koan.grading.sandbox.seccomp_filter import FilterSet, build_filters
from koan.grading.sandbox.uids import claim_uids, release_all
from koan.grading.sandbox.verdict import SetupFailed, decide, parse_verdict
from koan.grading.sandbox.zygote import Zygote, ZygoteLost

log = structlog.get_logger(__name__)
T = TypeVar("T")

SELF_CHECK = """
import errno
import os
import socket

UID = {uid}
SECCOMP = {seccomp}
BUBBLEWRAP = {bubblewrap}


def test_uid():
    if UID is not None:
        assert os.getuid() == UID and os.geteuid() == UID


def test_seccomp():
    if SECCOMP:
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except PermissionError:
            pass
        else:
            raise AssertionError("an internet socket was allowed")
        try:
            pid = os.fork()
        except PermissionError:
            pass
        else:
            if pid == 0:
                os._exit(0)
            raise AssertionError("fork was allowed")


def test_bubblewrap():
    if BUBBLEWRAP:
        assert not os.path.exists("/proc/self")
        assert not os.path.exists("/etc/passwd")
        try:
            open("/usr/koan-probe", "w")
        except OSError as exc:
            assert exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        else:
            raise AssertionError("/usr was writable")
        with open("scratch.txt", "w") as handle:
            handle.write("tmpfs works")
"""


def _run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, whether or not a loop is running here."""

    async def runner() -> T:
        return await factory()

    with ThreadPoolExecutor(1, thread_name_prefix="koan-sandbox-probe") as pool:
        return pool.submit(asyncio.run, runner()).result()


def candidates(*, root: bool, bwrap: str | None, seccomp: bool) -> list[Features]:
    """Mechanism sets worth trying here, strongest first."""
    found: list[Features] = []
    for uid_switch in (True, False) if root else (False,):
        for bubblewrap in (bwrap, None) if (bwrap and uid_switch) else (None,):
            for filters in (True, False) if seccomp else (False,):
                found.append(Features(uid_switch, bubblewrap, filters))
    return sorted(found, key=lambda f: (f.tier, f.seccomp, f.uid_switch), reverse=True)


async def self_check(
    features: Features, *, python: str, uid: int | None, filters: FilterSet | None
) -> bool:
    """Start a launcher with these mechanisms and check that a run is isolated as promised."""
    workroot = None if features.bubblewrap else tempfile.mkdtemp(prefix="koan-sandbox-probe-")
    if workroot is not None:
        os.chmod(workroot, 0o711)  # the slot uid must reach its run directory inside
    zygote = Zygote(
        features=features,
        python=python,
        node="/usr/bin/node",
        uid=uid,
        workroot=workroot,
        filters=filters,
    )
    try:
        await zygote.start()
        nonce = secrets.token_hex(16)
        tests = SELF_CHECK.format(
            uid=uid if features.uid_switch else None,
            seccomp=features.seccomp,
            bubblewrap=features.bubblewrap is not None,
        )
        limits = Limits()
        job = build_job(
            nonce=nonce,
            language="python",
            code="",
            tests=tests,
            limits=limits,
            js_memory_mb=1024,
        )
        run = await zygote.run(
            job, wall_s=10.0, output_bytes=limits.output_bytes, disk_mb=limits.disk_mb
        )
        report = decide(
            run,
            parse_verdict(run.verdict, nonce),
            language="python",
            limits=limits,
            tier=features.tier,
            duration_ms=0,
        )
        if report.status != "passed":
            log.info(
                "sandbox.probe.rejected",
                features=features.describe(),
                status=report.status,
                tests=[(t.name, t.status, t.message) for t in report.tests],
                stderr=report.stderr[-500:],
            )
        return report.status == "passed"
    except (ZygoteLost, SetupFailed, OSError) as exc:
        log.info("sandbox.probe.failed", features=features.describe(), error=str(exc))
        return False
    finally:
        await zygote.close()
        if workroot is not None:
            shutil.rmtree(workroot, ignore_errors=True)


@functools.lru_cache(maxsize=8)
def probe_features(python: str, base_uid: int, uid_range: int) -> Features | None:
    """The strongest mechanisms that work here for this interpreter; None if nothing does."""
    if not os.access(python, os.X_OK):
        return None
    try:
        filters: FilterSet | None = build_filters()
    except (ImportError, OSError, RuntimeError) as exc:
        log.info("sandbox.probe.no_seccomp", error=str(exc))
        filters = None
    root = os.geteuid() == 0
    claims = []
    if root:
        try:
            claims = claim_uids(1, base_uid=base_uid, span=uid_range)
        except OSError as exc:
            log.info("sandbox.probe.no_uid", error=str(exc))
            root = False
    uid = claims[0].uid if claims else None
    try:
        for features in candidates(
            root=root, bwrap=shutil.which("bwrap"), seccomp=filters is not None
        ):
            check = functools.partial(self_check, features, python=python, uid=uid, filters=filters)
            if _run_sync(check):
                log.info(
                    "sandbox.probe.tier", tier=features.tier.name, features=features.describe()
                )
                return features
        return None
    finally:
        release_all(claims)


def probe_tier() -> Tier:
    """The strongest tier that works on this machine with the default configuration (cached)."""
    config = SandboxConfig()
    features = probe_features(config.python, config.base_uid, config.uid_range)
    return Tier.NONE if features is None else features.tier
