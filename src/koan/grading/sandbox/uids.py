"""Claiming one unprivileged uid per slot, exclusively across every process on the machine.

Cleaning up after a run means killing everything that runs as the slot's uid, so two slots must
never share one: not in one Sandbox, nor between two server workers, nor between pytest-xdist
workers. Each claimed uid holds an flock on a lock file; the kernel drops it when the holder
dies, so a crashed server never strands its uids.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


def lock_dir() -> Path:
    """Where the lock files live: /run when root can write there, else the temp dir."""
    for candidate in (Path("/run/koan-sandbox"), Path(tempfile.gettempdir()) / "koan-sandbox"):
        try:
            candidate.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    raise OSError("no writable directory for the sandbox's uid locks")


@dataclass
class UidClaim:
    """An exclusively held uid; release() (or process exit) frees it."""

    uid: int
    _fd: int

    def release(self) -> None:
        """Give the uid back."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def claim_uids(count: int, *, base_uid: int, span: int) -> list[UidClaim]:
    """Claim count uids from [base_uid, base_uid + span); OSError if not enough are free."""
    directory = lock_dir()
    claims: list[UidClaim] = []
    for uid in range(base_uid, base_uid + span):
        if len(claims) == count:
            break
        fd = os.open(directory / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        claims.append(UidClaim(uid, fd))
    if len(claims) < count:
        for claim in claims:
            claim.release()
        raise OSError(f"only {len(claims)} of {count} sandbox uids are free from {base_uid}")
    return claims


def release_all(claims: list[UidClaim]) -> None:
    """Release every claim, ignoring ones already released."""
    for claim in claims:
        with contextlib.suppress(OSError):
            claim.release()
