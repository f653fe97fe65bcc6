"""Seccomp programs for the sandbox, compiled in the parent with libseccomp (pyseccomp).

The sandboxed interpreter never imports pyseccomp: the parent exports classic BPF and the
in-sandbox launcher loads it with one prctl() through ctypes. Three programs:

* ``zygote``: the warm launcher itself. It must fork, mount a tmpfs and switch uid, so only the
  network, the kernel-attack surface and cross-process access are refused.
* ``python`` / ``javascript``: stacked on top of the zygote's for each run. No new processes
  (threads only), no namespaces or mounts, no signals to other processes, no sending on sockets,
  no SysV IPC or POSIX message queues (objects that would outlive the run),
  and for Python no execve either (node is reached by one execve before the filter matters)
  and no new signal handlers (Python calls a handler with the frame that was running: the
  harness's own, out of the audit hook's sight).

Every program kills the process on a foreign architecture (32-bit int 0x80 calls); libseccomp
also rejects x32 syscall numbers on x86-64.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from functools import cache
from typing import Any

# The run filter lets a process signal itself (abort(), os.kill(os.getpid(), ...)) but nobody
# else. Its own pid is only known after fork, so the program is compiled with this placeholder
# and the launcher patches it (every jump comparing against it) before loading.
SELF_PID_PLACEHOLDER = 0x5EC0FFEE

CLONE_THREAD = 0x00010000
CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)

NETWORK = ("connect", "bind", "listen", "accept", "accept4", "sendto", "sendmsg", "sendmmsg")
KERNEL_SURFACE = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "perf_event_open",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "userfaultfd",
    "open_by_handle_at",
    "name_to_handle_at",
    "iopl",
    "ioperm",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "quotactl",
    "lookup_dcookie",
    "vhangup",
    "fanotify_init",
    "pidfd_getfd",
    "setns",
    "pivot_root",
    "chroot",
    "kcmp",
    "uselib",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
)
# ENOSYS rather than EPERM: callers treat it as "kernel too old" and fall back quietly
# (glibc's pthread_create retries clone3 with clone; libuv drops io_uring for its thread pool).
UNSUPPORTED = ("io_uring_setup", "io_uring_enter", "io_uring_register")
RUN_ONLY_DENIED = (
    "fork",
    "vfork",
    "unshare",
    "mount",
    "umount2",
    "tkill",
    "pidfd_open",
    "pidfd_send_signal",
)
NO_EXEC = ("execve", "execveat")
# Kernel objects that outlive the process that made them: SysV shared memory, message queues
# and semaphores, and POSIX message queues. A run must leave nothing behind, and nothing of an
# earlier run must be there for it to find. (The 32-bit multiplexer `ipc` is covered by the
# foreign-architecture rule.)
IPC = (
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
)


@dataclass(frozen=True)
class FilterSet:
    """The compiled programs, as raw little-endian `struct sock_filter` arrays."""

    zygote: bytes
    python: bytes
    javascript: bytes


def _deny(flt: Any, sc: Any, names: tuple[str, ...], err: int) -> None:
    for name in names:
        try:
            flt.add_rule(sc.ERRNO(err), name)
        except (OSError, ValueError, RuntimeError):
            # A syscall this architecture does not have (e.g. iopl off x86): nothing to refuse.
            continue


def _base(sc: Any) -> Any:
    flt = sc.SyscallFilter(sc.ALLOW)
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    # Only AF_UNIX sockets: the network namespace is empty anyway, this is the second wall.
    flt.add_rule(sc.ERRNO(errno.EPERM), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
    _deny(flt, sc, NETWORK, errno.EPERM)
    _deny(flt, sc, KERNEL_SURFACE, errno.EPERM)
    _deny(flt, sc, UNSUPPORTED, errno.ENOSYS)
    return flt


def _run_filter(sc: Any, *, python: bool) -> Any:
    flt = _base(sc)
    _deny(flt, sc, RUN_ONLY_DENIED, errno.EPERM)
    _deny(flt, sc, IPC, errno.EPERM)
    if python:
        _deny(flt, sc, NO_EXEC, errno.EPERM)
        # Reading a disposition (no new action) stays allowed: signal.getsignal() needs it.
        flt.add_rule(sc.ERRNO(errno.EPERM), "rt_sigaction", sc.Arg(1, sc.NE, 0))
    # Threads only: a clone without CLONE_THREAD is a new process (glibc's fork() is one).
    flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
    for flag in CLONE_NAMESPACE_FLAGS:
        flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, out of a filter's reach: make glibc fall back to clone.
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for name in ("kill", "tgkill"):
        flt.add_rule(sc.ERRNO(errno.EPERM), name, sc.Arg(0, sc.NE, SELF_PID_PLACEHOLDER))
    return flt


def _export(flt: Any) -> bytes:
    fd = os.memfd_create("koan-seccomp", os.MFD_CLOEXEC)
    try:
        with os.fdopen(fd, "w+b", closefd=False) as handle:
            flt.export_bpf(handle)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    program = b"".join(chunks)
    if not program or len(program) % 8:
        raise RuntimeError("libseccomp exported an empty or malformed program")
    return program


@cache
def build_filters() -> FilterSet:
    """Compile the three programs (cached: they do not depend on the run)."""
    # Imported here: it loads libseccomp.so, whose absence only lowers the tier.
    import pyseccomp as sc

    return FilterSet(
        zygote=_export(_base(sc)),
        python=_export(_run_filter(sc, python=True)),
        javascript=_export(_run_filter(sc, python=False)),
    )
