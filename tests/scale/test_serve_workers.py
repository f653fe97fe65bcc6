"""`koan serve --workers 2`: each worker accepts on a socket of its own, so both get learners.

With one shared listening socket, whichever worker woke first took each new connection, and
under light load one worker often took them all (its sandbox slot filled while the other's
idled). Here the kernel spreads connections over the workers' own sockets (SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from koan.cli.server import reuseport_socket
from tests.scale.servers import KoanServer, free_port, migrate, server_env

pytestmark = pytest.mark.xdist_group("serve-workers")

CONNECTIONS = 24


def _workers(pid: int) -> list[int]:
    """The server's worker processes (multiprocessing's resource tracker left out)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in found if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _established_to(port: int) -> set[str]:
    """Inodes of established TCP sockets whose local port is `port` (the server's side)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":
                inodes.add(fields[9])
    return inodes


def test_workers_can_each_listen_on_the_same_port() -> None:
    port = free_port()
    first = reuseport_socket("127.0.0.1", port)
    second = reuseport_socket("127.0.0.1", port)
    try:
        assert first.getsockname() == second.getsockname() == ("127.0.0.1", port)
    finally:
        first.close()
        second.close()


async def test_connections_are_spread_over_both_workers_and_sigterm_stops_them(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'koan.db'}"
    await migrate(url)
    env = server_env(tmp_path, KOAN_DATABASE_URL=url)
    server = KoanServer(env, tmp_path, name="two", workers=2).start()
    try:
        await server.wait_live()
        assert server.proc is not None
        limits = httpx.Limits(max_connections=CONNECTIONS)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
            # Hold the connections open at once, so each is a separate accept.
            answers = await asyncio.gather(
                *(client.get("/health/live") for _ in range(CONNECTIONS))
            )
            assert {r.status_code for r in answers} == {200}
            open_here = _established_to(server.port)
            held = {
                worker: len(_socket_inodes(worker) & open_here)
                for worker in _workers(server.proc.pid)
            }
        assert len(held) == 2
        assert all(count > 0 for count in held.values()), held
        server.signal(signal.SIGTERM)
        # Shut down gracefully, then ended by the signal, as a single uvicorn process does.
        assert await server.wait_exit() == -signal.SIGTERM
        assert not any(Path(f"/proc/{worker}").exists() for worker in held)
    finally:
        server.stop()
