"""Parent side of a slot's warm launcher: start it, hand it jobs, collect what a run produced.

The launcher (harness/zygote_main.py) runs under the system python3, inside bubblewrap when the
tier allows. The parent talks to it over a SOCK_SEQPACKET socketpair: a "run" message carries
four descriptors (job memfd, stdout, stderr and verdict pipes); an "exit" message comes back
with the wait status once the run has exited and (before or right after the report) everything
of its uid has been killed. The parent enforces the wall-clock limit and the output cap itself,
by asking the launcher to kill the run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from koan.grading.sandbox.bubblewrap import ENVIRONMENT, HARNESS_DIR, INTERPRETER_FLAGS, bwrap_argv
from koan.grading.sandbox.features import Features
from koan.grading.sandbox.limits import INODES
from koan.grading.sandbox.seccomp_filter import FilterSet

START_TIMEOUT_S = 15.0
KILL_GRACE_S = 3.0  # after asking for a kill, how long before the whole launcher is destroyed
DRAIN_GRACE_S = 1.0  # after the exit report, how long pipes may take to reach end of file
VERDICT_CAP = 4 << 20  # the harness sends at most a few KB per test
F_GETPIPE_SZ = 1032  # fcntl: a pipe's capacity in bytes (Linux)


class ZygoteLost(Exception):
    """The launcher died or stopped answering."""


@dataclass
class RunResult:
    """Everything the parent observed about one run."""

    status: int | None  # raw wait status; None when the launcher was lost
    cpu_s: float = 0.0
    wall_s: float = 0.0
    killed: str | None = None  # "wall" or "output" when the parent had the run killed
    stdout: bytes = b""
    stderr: bytes = b""
    verdict: bytes = b""
    output_overflow: bool = False
    verdict_overflow: bool = False
    spare: bool = False  # the job went to a run started ahead of it


@dataclass
class _Budget:
    """Bytes of learner output still allowed (stdout and stderr share it)."""

    remaining: int
    exceeded: asyncio.Event = field(default_factory=asyncio.Event)


# Called with everything a pipe has delivered so far, each time more arrives.
Watch = Callable[[bytearray], None]


class _Collector(asyncio.Protocol):
    """Reads one pipe, keeping at most what the budget allows and discarding the rest."""

    def __init__(self, budget: _Budget, watch: Watch | None = None) -> None:
        self.budget = budget
        self.data = bytearray()
        self.overflowed = False
        self.watch = watch
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        room = self.budget.remaining
        if len(data) > room:
            self.data += data[:room]
            self.budget.remaining = 0
            self.overflowed = True
            self.budget.exceeded.set()
        else:
            self.data += data
            self.budget.remaining -= len(data)
        if self.watch is not None:
            self.watch(self.data)

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _factory(collector: _Collector) -> Callable[[], _Collector]:
    return lambda: collector


@dataclass
class _Spare:
    """A run started ahead of its job: our ends of its job pipe and output pipes."""

    run_id: int
    key: str
    job_fd: int
    read_fds: list[int]
    language: str = "javascript"
    since: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        for fd in (self.job_fd, *self.read_fds):
            with contextlib.suppress(OSError):
                os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _write_job(fd: int, job: bytes) -> None:
    """Write a job into a spare's (empty) pipe: at once when the pipe holds it all, else
    from a thread (the spare reads it as it comes)."""
    try:
        room = fcntl.fcntl(fd, F_GETPIPE_SZ)
    except OSError:
        room = 0
    if len(job) <= room:
        _write_all(fd, job)
    else:
        await asyncio.to_thread(_write_all, fd, job)


async def _cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a helper task and wait until it has ended. A cancellation of the caller still
    goes through (suppressing CancelledError around `await task` would swallow it)."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # it ended on its own; what it raised is of no use any more


class Zygote:
    """One slot's launcher process."""

    def __init__(
        self,
        *,
        features: Features,
        python: str,
        node: str,
        uid: int | None,
        workroot: str | None,
        filters: FilterSet | None,
    ) -> None:
        self.features = features
        # Resolved: a symlink through /etc/alternatives would lead nowhere inside the sandbox.
        self.python = os.path.realpath(python)
        self.node = os.path.realpath(node)
        self.uid = uid
        self.workroot = workroot
        self.filters = filters
        self._process: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._stderr_tail = bytearray()
        self._next_id = 0
        self._spare: _Spare | None = None

    @property
    def alive(self) -> bool:
        """Whether the launcher is running and reachable."""
        return (
            self._process is not None
            and self._process.returncode is None
            and self._reader is not None
            and not self._reader.done()
        )

    def _config(self, fd: int) -> str:
        config: dict[str, Any] = {
            "control_fd": fd,
            "uid": self.uid if self.features.uid_switch else None,
            "isolate_mounts": self.features.bubblewrap is not None,
            "workroot": self.workroot,
            "node": self.node,
        }
        if self.features.seccomp and self.filters is not None:
            config["zygote_filter"] = base64.b64encode(self.filters.zygote).decode()
            config["run_filters"] = {
                "python": base64.b64encode(self.filters.python).decode(),
                "javascript": base64.b64encode(self.filters.javascript).decode(),
            }
        return json.dumps(config)

    async def start(self) -> None:
        """Launch the process and wait until it reports ready."""
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The configuration (with the filters) travels in a memfd, not argv: ps stays readable.
        config_fd = os.memfd_create("koan-zygote-config", 0)
        try:
            os.write(config_fd, self._config(child_sock.fileno()).encode())
            os.lseek(config_fd, 0, os.SEEK_SET)
            config_arg = f"--config-fd={config_fd}"
            if self.features.bubblewrap is not None:
                argv = bwrap_argv(self.features.bubblewrap, self.python, config_arg)
            else:
                script = str(HARNESS_DIR / "zygote_main.py")
                argv = [self.python, *INTERPRETER_FLAGS, script, config_arg]
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(child_sock.fileno(), config_fd),
                env=dict(ENVIRONMENT),
                cwd="/",
                start_new_session=True,
            )
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
            os.close(config_fd)
        parent_sock.setblocking(False)
        self._sock = parent_sock
        self._messages = asyncio.Queue()
        self._reader = asyncio.create_task(self._read_messages(parent_sock))
        self._stderr_task = asyncio.create_task(self._read_stderr())
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                message = await self._messages.get()
        except TimeoutError:
            message = None
        if message is None or message.get("op") != "ready":
            diagnostics = await self._shutdown()
            raise ZygoteLost(f"the sandbox launcher did not start: {diagnostics}")

    async def _read_messages(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(sock, 1 << 16)
                if not data:
                    break
                self._messages.put_nowait(json.loads(data))
        except (OSError, ValueError):
            pass
        finally:
            self._messages.put_nowait(None)

    async def _read_stderr(self) -> None:
        assert self._process is not None
        stream = self._process.stderr
        assert stream is not None
        while chunk := await stream.read(4096):
            self._stderr_tail = (self._stderr_tail + chunk)[-4096:]

    def _send(self, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        if self._sock is None:
            raise ZygoteLost("the sandbox launcher is not running")
        try:
            socket.send_fds(self._sock, [json.dumps(message).encode()], list(fds))
        except OSError as exc:
            raise ZygoteLost(f"the sandbox launcher is unreachable: {exc}") from exc

    async def _exit_report(self, run_id: int) -> dict[str, Any]:
        while True:
            message = await self._messages.get()
            if message is None:
                raise ZygoteLost("the sandbox launcher stopped during a run")
            if message.get("op") == "exit" and message.get("id") == run_id:
                return message

    @property
    def spare_key(self) -> str | None:
        """What the spare started ahead of its job was prepared for (None: no spare)."""
        return self._spare.key if self._spare is not None else None

    @property
    def spare_since(self) -> float:
        """When the spare was started (time.monotonic()): the older, the likelier it is up."""
        return self._spare.since if self._spare is not None else 0.0

    async def prepare(
        self, *, key: str, plan: dict[str, Any], disk_mb: int, language: str = "javascript"
    ) -> None:
        """Start a run ahead of its job: `plan` is the run's limits, with the CPU limit at the
        server's cap until a job sets its own (for Python, every limit at the server's caps:
        the run lowers them to its job's)."""
        await self.discard_spare()
        self._next_id += 1
        run_id = self._next_id
        job_read, job_write = os.pipe2(os.O_CLOEXEC)
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
        message = {"op": "prepare", "id": run_id, "disk_mb": disk_mb, "inodes": INODES,
                   "limits": plan, "language": language}  # fmt: skip
        try:
            self._send(message, [job_read, *(w for _, w in pipes)])
        except BaseException:
            for fd in (job_write, *(r for r, _ in pipes)):
                os.close(fd)
            raise
        finally:
            os.close(job_read)
            for _, write_end in pipes:
                os.close(write_end)
        self._spare = _Spare(run_id, key, job_write, [r for r, _ in pipes], language)

    async def discard_spare(self) -> None:
        """End the spare (if there is one) and wait until it has gone."""
        spare, self._spare = self._spare, None
        if spare is None:
            return
        spare.close()
        try:
            self._send({"op": "kill", "id": spare.run_id})
            async with asyncio.timeout(KILL_GRACE_S):
                await self._exit_report(spare.run_id)
        except (ZygoteLost, TimeoutError):
            await self._shutdown()

    async def _use_spare(self, key: str | None, cpu: tuple[int, int] | None) -> _Spare | None:
        """The spare, with its CPU limit lowered to the job's, if it was prepared for this
        kind of job; otherwise it is ended."""
        spare = self._spare
        if spare is None:
            return None
        if key is None or spare.key != key or cpu is None:
            await self.discard_spare()
            return None
        self._spare = None
        if spare.language == "python":
            # It lowers its limits to the job's itself, before anything of the job runs.
            self._send({"op": "use", "id": spare.run_id})
            return spare
        self._send({"op": "limit", "id": spare.run_id, "cpu_soft": cpu[0], "cpu_hard": cpu[1]})
        while True:
            message = await self._messages.get()
            if message is None:
                spare.close()
                raise ZygoteLost("the sandbox launcher stopped")
            if message.get("id") != spare.run_id:
                continue
            if message.get("op") == "limited" and message.get("ok"):
                return spare
            # Gone before its job (its exit is this message), or its limit could not be set.
            self._spare = spare
            if message.get("op") == "exit":
                self._spare = None
                spare.close()
                return None
            await self.discard_spare()
            return None

    async def run(
        self,
        job: bytes,
        *,
        wall_s: float,
        output_bytes: int,
        disk_mb: int,
        spare_key: str | None = None,
        cpu: tuple[int, int] | None = None,
        stop_on_output: bool = True,
        watch_verdict: Watch | None = None,
    ) -> RunResult:
        """Run one job to completion (or to a limit) and return what it produced.

        With a spare prepared for `spare_key`, the job goes to it (its CPU limit lowered to
        `cpu`, the job's rlimits); any other spare is ended first. `stop_on_output=False`
        keeps running past the output cap (what is over it is dropped). `watch_verdict` sees
        the verdict channel as it arrives, before the run has ended.
        """
        spare = await self._use_spare(spare_key, cpu)
        if spare is not None:
            try:
                await _write_job(spare.job_fd, job)
            except OSError:
                pass  # it is gone: its exit says so, and the run reports it never got ready
            finally:
                os.close(spare.job_fd)
            run = await self._collect(
                spare.run_id, spare.read_fds, wall_s, output_bytes, stop_on_output, watch_verdict
            )
            run.spare = True
            return run
        self._next_id += 1
        run_id = self._next_id
        job_fd = os.memfd_create("koan-job", os.MFD_CLOEXEC)
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
        try:
            view = memoryview(job)
            while view:
                view = view[os.write(job_fd, view) :]
            os.lseek(job_fd, 0, os.SEEK_SET)
            # The tmpfs size travels with the message: the launcher mounts it before forking.
            message = {"op": "run", "id": run_id, "disk_mb": disk_mb, "inodes": INODES}
            self._send(message, [job_fd, *(w for _, w in pipes)])
        finally:
            os.close(job_fd)
            for _, write_end in pipes:
                os.close(write_end)
        return await self._collect(
            run_id, [r for r, _ in pipes], wall_s, output_bytes, stop_on_output, watch_verdict
        )

    async def _collect(
        self,
        run_id: int,
        read_fds: list[int],
        wall_s: float,
        output_bytes: int,
        stop_on_output: bool,
        watch_verdict: Watch | None = None,
    ) -> RunResult:
        """Read the run's stdout, stderr and verdict pipes until it exits."""
        loop = asyncio.get_running_loop()
        budget = _Budget(output_bytes)
        verdict_budget = _Budget(VERDICT_CAP)
        collectors: list[_Collector] = []
        transports: list[asyncio.ReadTransport] = []
        files = [os.fdopen(read_end, "rb", buffering=0) for read_end in read_fds]
        try:
            watches = (None, None, watch_verdict)
            for file, share, watch in zip(
                files, (budget, budget, verdict_budget), watches, strict=True
            ):
                collector = _Collector(share, watch)
                transport, _ = await loop.connect_read_pipe(_factory(collector), file)
                collectors.append(collector)
                transports.append(transport)
            watched = budget if stop_on_output else _Budget(0)
            return await self._supervise(run_id, wall_s, watched, verdict_budget, collectors)
        finally:
            for transport in transports:
                transport.close()
            for file in files[len(transports) :]:
                file.close()

    async def _supervise(
        self,
        run_id: int,
        wall_s: float,
        budget: _Budget,
        verdict_budget: _Budget,
        collectors: list[_Collector],
    ) -> RunResult:
        report_task = asyncio.ensure_future(self._exit_report(run_id))
        limit_tasks = [
            asyncio.ensure_future(budget.exceeded.wait()),
            asyncio.ensure_future(verdict_budget.exceeded.wait()),
        ]
        killed: str | None = None
        report: dict[str, Any] | None = None
        try:
            done, _ = await asyncio.wait(
                {report_task, *limit_tasks}, timeout=wall_s, return_when=asyncio.FIRST_COMPLETED
            )
            if report_task not in done:
                killed = "output" if budget.exceeded.is_set() else "wall"
                if verdict_budget.exceeded.is_set():
                    killed = "verdict"
                self._send({"op": "kill", "id": run_id})
                async with asyncio.timeout(KILL_GRACE_S):
                    report = await report_task
            else:
                report = report_task.result()
        except (ZygoteLost, TimeoutError):
            await self._shutdown()
        except asyncio.CancelledError:
            # Nobody waits for this verdict any more: stop the run now, or the slot's next job
            # would queue behind it inside the launcher and lose its own wall-clock time.
            with contextlib.suppress(ZygoteLost):
                self._send({"op": "kill", "id": run_id})
            raise
        finally:
            for task in (report_task, *limit_tasks):
                task.cancel()
        if report is not None:
            # Every writer is dead once the report arrives; end of file follows at once.
            await asyncio.wait([c.done for c in collectors], timeout=DRAIN_GRACE_S)
        stdout, stderr, verdict = collectors
        return RunResult(
            status=None if report is None else int(report["status"]),
            cpu_s=0.0 if report is None else float(report["cpu_s"]),
            wall_s=0.0 if report is None else float(report["wall_s"]),
            killed=killed,
            stdout=bytes(stdout.data),
            stderr=bytes(stderr.data),
            verdict=bytes(verdict.data),
            output_overflow=stdout.overflowed or stderr.overflowed,
            verdict_overflow=verdict.overflowed,
        )

    async def _stop_reader(self) -> None:
        task, self._reader = self._reader, None
        if task is not None:
            await _cancel_and_wait(task)

    async def _shutdown(self) -> str:
        """Stop the launcher for good (bubblewrap takes the whole sandbox with it). A caller
        cancelled meanwhile is cancelled at once; the stopping still goes to its end."""
        return await asyncio.shield(self._stop_now())

    async def _stop_now(self) -> str:
        if self._spare is not None:
            self._spare.close()
            self._spare = None
        process, self._process = self._process, None
        await self._stop_reader()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if process is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await process.wait()
        for task in (self._stderr_task,):
            if task is not None:
                await _cancel_and_wait(task)
        tail = bytes(self._stderr_tail).decode("utf-8", "replace").strip()
        return tail or f"exit status {None if process is None else process.returncode}"

    async def close(self) -> None:
        """Ask the launcher to leave (it kills its runs first), then make sure it did, even if
        the caller is cancelled meanwhile."""
        await asyncio.shield(self._leave())

    async def _leave(self) -> None:
        process = self._process
        if self._spare is not None:
            # End of file on its job pipe: a spare leaves on its own, even one so new that it
            # has not yet taken the slot uid (which the launcher's sweep would miss).
            self._spare.close()
            self._spare = None
        # Stop reading first: an event loop still polling the socket (uvloop) keeps it open
        # after close(), the launcher never sees end of file, and shutdown waits for the
        # timeout below (2 s per slot on every deploy).
        await self._stop_reader()
        if self._sock is not None:
            self._sock.close()  # end of file on its socket: it sweeps and exits
            self._sock = None
        if process is not None and process.returncode is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await process.wait()
        await self._shutdown()
