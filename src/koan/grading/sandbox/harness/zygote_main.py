"""Warm launcher ("zygote") for one sandbox slot; runs under the system python3, stdlib only.

The parent starts one per slot (inside bubblewrap when available) and sends it jobs over a
SOCK_SEQPACKET socket, each with four descriptors: the job (a memfd holding JSON), the write ends
of the stdout and stderr pipes, and the write end of the verdict pipe. Per job it forks a child
that gives itself a private tmpfs, rlimits, the slot's uid, no_new_privs and the run's seccomp
filter, then runs the Python tests in-process (already warm) or execs node. After the child
exits it kills everything left running as the slot uid and reports the wait status.

It never sees a job's contents: the child reads the memfd after fork, so no learner's code or
verdict nonce stays in the zygote's memory for a later run to find.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import gc
import importlib
import json
import os
import resource
import secrets
import select
import shutil
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Warm for every run, and imported before any learner's code can change them.
import asyncio  # noqa: E402,F401
import collections  # noqa: E402,F401
import dataclasses  # noqa: E402,F401
import datetime  # noqa: E402,F401
import decimal  # noqa: E402,F401
import fractions  # noqa: E402,F401
import functools  # noqa: E402,F401
import heapq  # noqa: E402,F401
import inspect  # noqa: E402,F401
import itertools  # noqa: E402,F401
import math  # noqa: E402,F401
import random  # noqa: E402,F401
import re  # noqa: E402,F401
import string  # noqa: E402,F401
import typing  # noqa: E402,F401
from _json import encode_basestring_ascii  # noqa: E402

import run_python

# Every built-in module too: a run may not load one again (run_python.seal), so it finds them
# all loaded.
for _name in sys.builtin_module_names:
    importlib.import_module(_name)

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
LAST_CAPABILITY = 63  # beyond the kernel's last one prctl says EINVAL, which is fine
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
SECCOMP_MODE_FILTER = 2
MNT_DETACH = 2
CLONE_NEWIPC = 0x08000000
SHM_DIR = "/dev/shm"
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
SELF_PID_PLACEHOLDER = 0x5EC0FFEE  # see seccomp_filter.py in the parent package
WORK = "/work"
EXIT_SETUP_FAILED = 70

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg: int = 0) -> None:
    """prctl() with one argument, raising OSError on failure."""
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def load_seccomp(program: bytes) -> None:
    """Install a classic-BPF seccomp program on the calling thread (no_new_privs first)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    result = _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0)
    _check(result, "seccomp")


def placeholder_offsets(program: bytes) -> list[int]:
    """Offsets of the BPF jumps that compare against the self-pid placeholder."""
    offsets = []
    for offset in range(0, len(program), 8):
        code, _jt, _jf, k = struct.unpack_from("<HBBI", program, offset)
        if code & 0x07 == 0x05 and k == SELF_PID_PLACEHOLDER:  # a BPF_JMP comparison
            offsets.append(offset)
    return offsets


def patch_self_pid(program: bytes, offsets: list[int], pid: int) -> bytes:
    """Put pid into the k field of each placeholder jump."""
    out = bytearray(program)
    for offset in offsets:
        struct.pack_into("<I", out, offset + 4, pid)
    return bytes(out)


def read_all(fd: int) -> bytes:
    """Everything from fd to end of file."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    """os.write until all of data is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Zygote:
    """One slot's launcher: receives jobs, forks a locked-down child per job, cleans up."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.sock = socket.socket(fileno=int(config["control_fd"]))
        self.sock.setblocking(True)
        self.pending: list[tuple[dict[str, Any], list[int]]] = []  # jobs that came mid-run
        self.uid: int | None = config.get("uid")
        self.isolate_mounts = bool(config.get("isolate_mounts"))
        self.workroot: str | None = config.get("workroot")
        self.node = str(config.get("node", "/usr/bin/node"))
        filters = config.get("run_filters") or {}
        self.run_filters = {lang: base64.b64decode(prog) for lang, prog in filters.items()}
        # Found once here, so each run only writes its pid into known places.
        self.pid_slots = {lang: placeholder_offsets(p) for lang, p in self.run_filters.items()}
        zygote_filter = config.get("zygote_filter")
        self.zygote_filter = base64.b64decode(zygote_filter) if zygote_filter else None
        self.pid = os.getpid()
        harness_dir = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(harness_dir, "run_js.js"), encoding="utf-8") as handle:
            self.js_harness = handle.read()

    # --- messages ------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> bool:
        """One message to the parent (write(), not send(): the filter refuses send*); False
        when the parent has gone."""
        try:
            os.write(self.sock.fileno(), json.dumps(message).encode())
        except OSError:
            return False
        return True

    def receive(self) -> tuple[dict[str, Any] | None, list[int]]:
        """Next message and its descriptors; None when the parent has gone."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 16, 8)
        except (ConnectionError, OSError):
            return None, []
        if not data:
            return None, fds
        message: dict[str, Any] = json.loads(data)
        return message, fds

    # --- lifecycle -----------------------------------------------------------------------

    def serve(self) -> None:
        """Main loop: one job at a time until the parent closes the socket."""
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # outside bubblewrap nothing else ties us
        prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of a run come to us, to be reaped
        if self.zygote_filter is not None:
            load_seccomp(self.zygote_filter)
        self.sweep()  # a crashed predecessor on this uid may have left processes behind
        gc.collect()
        gc.freeze()  # forked children then share these pages instead of copying them
        self.send({"op": "ready", "pid": os.getpid()})
        while True:
            message, fds = self.pending.pop(0) if self.pending else self.receive()
            if message is None:
                break
            op = message.get("op")
            if op in ("run", "prepare") and len(fds) == 4:
                self.run(message, fds, spare=op == "prepare")
            else:
                if op == "limit":  # for a spare that has already gone
                    self.send({"op": "limited", "id": message.get("id"), "ok": False})
                for fd in fds:
                    os.close(fd)
        self.sweep()

    def run(self, message: dict[str, Any], fds: list[int], *, spare: bool = False) -> None:
        """Fork one locked-down child for a job, wait for it, clean up, report.

        A `spare` (the "prepare" message) is a run started before its job, while the slot is
        idle: it waits for the job on a pipe the parent writes to (this process never sees
        it). A JavaScript spare has started node (which takes longer to start than most runs
        take), its CPU limit at the server's cap: the parent's "limit" lowers it to the job's
        before the job is written. A Python spare has been forked and set up (the fork, not
        the tests, is most of a short run's cost); the parent's "use" marks it taken, and it
        lowers its limits to the job's itself once the job has arrived. A job of another kind
        (the next "run" or "prepare") ends an unused spare.
        """
        run_id = int(message["id"])
        workdir = WORK
        if self.isolate_mounts:
            # A fresh tmpfs per run, mounted here rather than in a mount namespace of the
            # run's own: tearing a namespace down costs a millisecond on the critical path,
            # a lazy unmount after the report costs nothing there.
            owner = f",uid={self.uid},gid={self.uid}" if self.uid is not None else ""
            options = f"size={int(message['disk_mb'])}m,nr_inodes={int(message['inodes'])}"
            options += f",mode=0700{owner}"
            flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
            _check(_libc.mount(b"tmpfs", WORK.encode(), b"tmpfs", flags, options.encode()), "mount")
        else:
            assert self.workroot is not None
            workdir = os.path.join(self.workroot, f"run-{run_id}-{secrets.token_hex(4)}")
        pid = os.fork()
        if pid == 0:
            try:
                self.sock.close()
                launch = Launch(self, fds, workdir)
                if spare:
                    launch.start_spare(message)
                launch.start()
            finally:
                os._exit(EXIT_SETUP_FAILED)
        for fd in fds:
            os.close(fd)
        started = time.monotonic()
        pidfd = os.pidfd_open(pid)
        parent_gone = False
        used = not spare  # a spare is used once its CPU limit is set for a job
        try:
            while True:
                watched = [pidfd] if parent_gone else [self.sock.fileno(), pidfd]
                ready, _, _ = select.select(watched, [], [])
                if pidfd in ready:
                    break
                control, extra = self.receive()
                if control is None:
                    parent_gone = True
                    self.sweep(pid, settle=False)
                elif control.get("op") == "kill":
                    if control.get("id") == run_id:
                        self.sweep(pid, settle=False)
                elif control.get("op") == "limit" and control.get("id") == run_id and not used:
                    used = self.limit_cpu(pid, control)
                    self.send({"op": "limited", "id": run_id, "ok": used})
                elif control.get("op") == "use" and control.get("id") == run_id:
                    used = True  # a Python spare, which lowers its limits to its job's itself
                else:
                    # The next job, sent as soon as the parent gave up on this one: keep it.
                    self.pending.append((control, extra))
                    if not used:
                        self.sweep(pid, settle=False)  # an unused spare: not wanted any more
                    continue
                for fd in extra:
                    os.close(fd)
        finally:
            os.close(pidfd)
        _, status, usage = os.wait4(pid, 0)
        wall = time.monotonic() - started
        report = {
            "op": "exit",
            "id": run_id,
            "status": status,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "maxrss_kb": usage.ru_maxrss,
            "wall_s": wall,
        }
        # Under the run filter the child could start no process, so nothing of the run is left
        # to hold its pipes open: report first and sweep (defence in depth) before the next job.
        # Without it, survivors must die first or the parent would wait for their pipes.
        early = bool(self.run_filters) and not parent_gone
        if early:
            # A spare ended by its parent's leaving (end of file on its job pipe) may exit
            # before the launcher sees that the socket is closed.
            parent_gone = not self.send(report)
        self.sweep(pid)
        if not early and not parent_gone:
            self.send(report)
        # Nothing of the run is alive any more: its files can go.
        if self.isolate_mounts:
            _check(_libc.umount2(WORK.encode(), MNT_DETACH), "umount")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if parent_gone:
            sys.exit(0)

    def limit_cpu(self, pid: int, message: dict[str, Any]) -> bool:
        """Lower a spare's CPU limit to its job's, as the slot uid and gid (only the same ids,
        or CAP_SYS_RESOURCE, may change another process's limits; the launcher has neither)."""
        soft, hard = int(message["cpu_soft"]), int(message["cpu_hard"])
        if self.uid is None:
            try:
                resource.prlimit(pid, resource.RLIMIT_CPU, (soft, hard))
            except OSError:
                return False
            return True
        helper = os.fork()
        if helper == 0:
            code = 1
            try:
                os.setresgid(self.uid, self.uid, self.uid)  # the kernel compares both ids
                os.setresuid(self.uid, self.uid, self.uid)
                resource.prlimit(pid, resource.RLIMIT_CPU, (soft, hard))
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(helper, 0)
        return os.waitstatus_to_exitcode(status) == 0

    def sweep(self, child: int | None = None, *, settle: bool = True) -> None:
        """Kill everything a run started: kill(-1, SIGKILL) as the slot uid.

        One pass is enough: kill(-1) walks the task list under tasklist_lock, and a fork racing
        with it is aborted because its parent already has SIGKILL pending. (Its return value
        says nothing: it succeeds whenever any other process exists, permitted or not.) With
        settle=False nothing is reaped, so the run's own child is left for wait4().
        """
        if self.uid is None:
            # No uid of our own: the run's process group is the best handle there is.
            if child is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child, signal.SIGKILL)
        else:
            helper = os.fork()
            if helper == 0:
                code = 1
                try:
                    os.setresuid(self.uid, self.uid, self.uid)
                    for _ in range(2):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(-1, signal.SIGKILL)
                    code = 0
                finally:
                    os._exit(code)
            os.waitpid(helper, 0)
        if settle:
            self.reap()
            self.remove_shared_memory()

    def remove_shared_memory(self) -> None:
        """Outside bubblewrap, POSIX shared memory the slot uid left in the host's /dev/shm.

        (Inside it, /dev/shm is a read-only, root-owned directory of bubblewrap's own /dev.)
        """
        if self.uid is None or self.isolate_mounts:
            return
        with contextlib.suppress(OSError), os.scandir(SHM_DIR) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_uid == self.uid:
                        os.unlink(entry.path)

    def reap(self) -> None:
        """Collect exited children: orphans of a run are re-parented to us (subreaper).

        With a uid of our own every descendant was just sent SIGKILL, so wait (briefly) until
        all of them are gone; without one, escaped processes may live on, so only collect.
        """
        deadline = time.monotonic() + 2.0
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid != 0:
                continue
            if self.uid is None or time.monotonic() > deadline:
                return
            time.sleep(0.0002)


class Launch:
    """The forked child of one job: lock itself down, then run the tests."""

    def __init__(self, zygote: Zygote, fds: list[int], workdir: str) -> None:
        self.zygote = zygote
        self.job_fd, self.out_fd, self.err_fd, self.verdict_fd = fds
        self.workdir = workdir
        self.nonce = ""

    def emit(self, record: dict[str, Any]) -> None:
        """One verdict record for the parent, tagged with the run's nonce."""
        write_all(self.verdict_fd, f"{self.nonce} {json.dumps(record)}\n".encode())

    def start(self) -> NoReturn:
        """Set up the run; on any failure report it (if the nonce is known) and exit."""
        try:
            os.setsid()
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            job: dict[str, Any] = json.loads(read_all(self.job_fd))
            self.nonce = str(job["nonce"])
            language = str(job["language"])
            limits: dict[str, int] = job["limits"]
            self.make_workdir()
            self.private_ipc()
            self.set_rlimits(limits)
            self.drop_uid()
            os.chdir(self.workdir)
            if language == "javascript":
                self.exec_node(limits, self.environment(self.workdir))  # it reads the job itself
            self.run_python(job)
        except BaseException as exc:  # anything failing here is the sandbox's fault, not the code's
            self.fatal(exc)
        os._exit(EXIT_SETUP_FAILED)

    def fatal(self, exc: BaseException) -> NoReturn:
        """Report a failure of the set-up (if the nonce is known yet) and exit."""
        if self.nonce:
            with contextlib.suppress(OSError):
                self.emit({"t": "fatal", "message": f"{type(exc).__name__}: {exc}"})
        os._exit(EXIT_SETUP_FAILED)

    def run_python(self, job: dict[str, Any]) -> NoReturn:
        """A Python job, once this child is set up: its files, then the tests in-process."""
        if "programs" in job:
            # A trial (several programs tried in turn, for the tutor's guard): the harness
            # takes the programs from the job, and nobody reads their output.
            self.out_fd = self.err_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        else:
            self.write_files(job, "python")
        self.python(job, self.environment(self.workdir))

    def start_spare(self, message: dict[str, Any]) -> NoReturn:
        """Set up a run for a job still to come, which arrives on its pipe: node reads it
        itself (fd 3); a Python spare reads it here, then lowers its limits to the job's."""
        try:
            os.setsid()
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            limits: dict[str, int] = message["limits"]
            self.make_workdir()
            self.private_ipc()
            self.set_rlimits(limits)
            self.drop_uid()
            os.chdir(self.workdir)
            if message.get("language") != "python":
                self.exec_node(limits, self.environment(self.workdir))
            # It may wait long for its job: nothing of the launcher's may stay open in it (its
            # stderr), and it must not outlive the launcher, whose death signal the uid switch
            # has cleared (so it is set again, and a launcher already gone ends it here).
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            os.dup2(self.out_fd, 1)
            os.dup2(self.err_fd, 2)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != self.zygote.pid:
                raise ProcessLookupError("the launcher has gone")
        except BaseException:
            os._exit(EXIT_SETUP_FAILED)  # the parent sees a run that never got ready
        try:
            job: dict[str, Any] = json.loads(read_all(self.job_fd))
            self.nonce = str(job["nonce"])
            if job.get("language") != "python":
                raise ValueError("a Python spare was sent another kind of job")
            # Set up at the server's caps, as the slot uid now: limits can only be lowered,
            # and they are, to the job's own, before anything of the job runs.
            self.set_rlimits(job["limits"])
            self.run_python(job)
        except BaseException as exc:
            self.fatal(exc)

    @staticmethod
    def environment(workdir: str) -> dict[str, str]:
        """The environment a run's code sees."""
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}

    def make_workdir(self) -> None:
        """Outside bubblewrap: a private directory owned by the slot uid (the zygote removes it)."""
        if self.zygote.isolate_mounts:
            return  # the zygote mounted a fresh tmpfs on /work for this run
        os.mkdir(self.workdir, 0o700)
        if self.zygote.uid is not None:
            os.chown(self.workdir, self.zygote.uid, self.zygote.uid)

    def private_ipc(self) -> None:
        """Without a run filter, a fresh IPC namespace: SysV objects die with the run.

        The run filter refuses every SysV IPC and POSIX message queue call, so only runs without
        one need this (it costs a namespace per run); it needs root, as the uid switch does.
        """
        if self.zygote.uid is None or self.zygote.run_filters:
            return
        _check(_libc.unshare(CLONE_NEWIPC), "unshare(CLONE_NEWIPC)")

    def set_rlimits(self, limits: dict[str, int]) -> None:
        """Apply the job's rlimits (before the uid switch, so hard limits are final too)."""
        rlimits = [
            (resource.RLIMIT_CORE, 0, 0),
            (resource.RLIMIT_CPU, limits["cpu_soft"], limits["cpu_hard"]),
            (resource.RLIMIT_FSIZE, limits["fsize_bytes"], limits["fsize_bytes"]),
            (resource.RLIMIT_NOFILE, limits["nofile"], limits["nofile"]),
            (resource.RLIMIT_AS, limits["as_bytes"], limits["as_bytes"]),
            (resource.RLIMIT_MSGQUEUE, 0, 0),
        ]
        if self.zygote.uid is not None:
            # Counted per real uid, and never enforced for root: only meaningful after the switch.
            rlimits.append((resource.RLIMIT_NPROC, limits["nproc"], limits["nproc"]))
        for which, soft, hard in rlimits:
            resource.setrlimit(which, (soft, hard))

    def drop_uid(self) -> None:
        """Become the slot uid for good (clears every capability)."""
        uid = self.zygote.uid
        if uid is None:
            return
        # Empty the bounding set too (best effort: it needs CAP_SETPCAP). With no_new_privs
        # nothing could regain a capability anyway; this leaves none to regain at all.
        for capability in range(LAST_CAPABILITY + 1):
            if _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                break  # EINVAL past the last capability, EPERM without CAP_SETPCAP
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise PermissionError("uid switch did not stick")

    def write_files(self, job: dict[str, Any], language: str) -> None:
        """The learner's code as the conventions name it (the tests never reach the disk)."""
        extension = "py" if language == "python" else "js"
        for stem, key in (("solution", "code"),):
            path = os.path.join(self.workdir, f"{stem}.{extension}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                write_all(fd, str(job[key]).encode("utf-8", "surrogateescape"))
            finally:
                os.close(fd)

    def arrange_fds(self, keep: dict[int, int]) -> None:
        """stdin from /dev/null, stdout/stderr to the pipes, keep[src] -> dst, close the rest."""
        devnull = os.open(os.devnull, os.O_RDONLY)
        sources = [devnull, self.out_fd, self.err_fd, *keep]
        # Park every source above all sources and targets first, so no dup2 clobbers another.
        floor = max([*sources, *keep.values()]) + 1
        parked = {fcntl.fcntl(src, fcntl.F_DUPFD, floor): dst for src, dst in keep.items()}
        stdio = [fcntl.fcntl(src, fcntl.F_DUPFD, floor) for src in sources[:3]]
        for target, temp in enumerate(stdio):
            os.dup2(temp, target)
        for temp, dst in parked.items():
            os.dup2(temp, dst)
        previous = 2
        for fd in sorted(parked.values()):
            os.closerange(previous + 1, fd)
            previous = fd
        os.closerange(previous + 1, 1 << 20)  # close_range(2): one call, whatever the limit

    def lock_down(self, language: str) -> None:
        """no_new_privs, not dumpable, and the run's seccomp filter on top of the zygote's."""
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_DUMPABLE, 0)
        program = self.zygote.run_filters.get(language)
        if program is not None:
            slots = self.zygote.pid_slots[language]
            load_seccomp(patch_self_pid(program, slots, os.getpid()))

    def python(self, job: dict[str, Any], environment: dict[str, str]) -> NoReturn:
        """Run the Python tests in this (warm) interpreter."""
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        # A random descriptor number: finding it takes deliberate probing, and even then the
        # nonce is needed for a record to count.
        verdict = 16 + secrets.randbelow(max(1, nofile - 48))
        self.arrange_fds({self.verdict_fd: verdict})
        self.verdict_fd = verdict
        os.environ.clear()
        os.environ.update(environment)
        # The run's filter refuses new signal handlers: the harness's are set first.
        armed = run_python.claim_signals(trial="programs" in job)
        self.lock_down("python")
        emit = self.make_emit()
        emit({"t": "ready"})
        self.nonce = ""
        del job["nonce"]
        run_python.run(job, emit, self.workdir, armed)
        os._exit(EXIT_SETUP_FAILED)  # not reached: run() ends the process itself

    def make_emit(self) -> Callable[[dict[str, Any]], None]:
        """A closure holding the nonce, the fd and the functions it needs, bound now.

        Records are serialised with C functions only (the learner can replace attributes of
        the json package, not the built-in functions captured here).
        """
        nonce, fd, write = self.nonce, self.verdict_fd, os.write
        quote, view, text, kind, listing = encode_basestring_ascii, memoryview, str, type, list

        def emit(record: dict[str, Any]) -> None:
            fields = []
            for key, value in record.items():
                if kind(value) is listing:
                    encoded = "[" + ",".join([quote(text(item)) for item in value]) + "]"
                else:
                    encoded = quote(text(value))
                fields.append(quote(text(key)) + ":" + encoded)
            data = view(f"{nonce} {{{','.join(fields)}}}\n".encode())
            while data:
                data = data[write(fd, data) :]

        return emit

    def exec_node(self, limits: dict[str, int], environment: dict[str, str]) -> NoReturn:
        """Replace this child with node running the JavaScript harness, which reads the job
        (fd 3: the memfd, or a spare's pipe), says it is ready and writes the solution."""
        with contextlib.suppress(OSError):  # a pipe has no offset
            os.lseek(self.job_fd, 0, os.SEEK_SET)
        self.arrange_fds({self.job_fd: 3, self.verdict_fd: 4})
        self.verdict_fd = 4
        self.lock_down("javascript")
        argv = [
            self.zygote.node,
            f"--max-old-space-size={limits['heap_mb']}",
            "--no-warnings",
            "-e",
            self.zygote.js_harness,
            "3",
            "4",
            self.workdir,
        ]
        os.execve(self.zygote.node, argv, environment)


def main() -> None:
    """Entry point: the slot's configuration is JSON in the memfd named by --config-fd=N."""
    config_fd = int(sys.argv[1].removeprefix("--config-fd="))
    config = json.loads(read_all(config_fd))
    os.close(config_fd)
    Zygote(config).serve()


if __name__ == "__main__":
    main()
