"""`koan serve`: Koan over HTTP, one process or several sharing a port."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from koan.cli.common import console, database_errors, err_console, fail
from koan.config import Settings


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    # Checked here: a port past 65535 is not refused by the server, which then says it is
    # running while it listens nowhere.
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve Koan over HTTP."""
    import uvicorn

    settings = Settings()
    _check_tutor(settings)
    _check_schema(settings.effective_database_url)
    if workers > 1:
        from koan.ops.metrics import MULTIPROCESS_ENV, prepare_multiprocess_dir

        # The workers share one port, so a scrape reaches any one of them: they keep their
        # numbers in shared files and every /metrics adds them all up.
        prepare_multiprocess_dir(
            Path(os.environ.get(MULTIPROCESS_ENV) or settings.data_dir / "prometheus")
        )
    console.print(f"Koan ({settings.env}) on http://{host}:{port}")
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        # In-flight gradings and tutor streams get this long after SIGTERM (systemd: 30 s).
        "timeout_graceful_shutdown": 25,
        # Idle client connections stay open 75 s (uvicorn: 5 s), longer than a reverse proxy's
        # upstream idle timeout (nginx and most load balancers: 60 s), so the proxy never
        # sends a request on a connection Koan is closing; a learner's next question also
        # skips the new connection.
        "timeout_keep_alive": 75,
        # Koan believes X-Forwarded-* only from KOAN_TRUSTED_PROXIES (koan.middleware);
        # uvicorn's own handling would trust 127.0.0.1 (or FORWARDED_ALLOW_IPS) instead.
        "proxy_headers": False,
        # Koan logs each request itself, without query strings (they can hold tokens).
        "access_log": False,
        "log_level": settings.log_level.lower(),
    }
    if workers > 1 and not reload and hasattr(socket, "SO_REUSEPORT"):
        raise typer.Exit(serve_reuseport(options, workers))
    uvicorn.run("koan.app:create_app", workers=workers, reload=reload, **options)


def _check_tutor(settings: Settings) -> None:
    """Build the tutor's model chain once, so a setup that cannot work (no key, a missing
    price table) is said before the workers start, not as each worker's startup traceback."""
    import asyncio

    from koan.llm.tutor_llm import build_tutor_llm

    asyncio.run(build_tutor_llm(settings).close())


def _check_schema(database_url: str) -> None:
    """Refuse to start on a database with no schema (every request would fail), and say so
    when it is behind this Koan's migrations; one ahead (a rolled-back release) is served."""
    import asyncio

    from koan.migrate import current_revision, head_revision, is_behind

    with database_errors():
        current = asyncio.run(current_revision(database_url))
    if current is None:
        fail("The database has no tables yet: run `koan db upgrade` first, then `koan serve`.")
    if is_behind(current):
        err_console.print(
            f"The database is at revision {current}, behind this Koan's {head_revision()}: "
            "run `koan db upgrade`. Serving anyway.",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket of this worker's own on a port other workers also listen on."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _reuseport_worker(options: dict[str, Any]) -> None:
    import uvicorn

    sock = reuseport_socket(options["host"], options["port"])
    config = uvicorn.Config("koan.app:create_app", **options)
    uvicorn.Server(config).run(sockets=[sock])


def serve_reuseport(options: dict[str, Any], workers: int) -> int:
    """Run `workers` processes, each accepting on a socket of its own (SO_REUSEPORT).

    With one shared socket (uvicorn's own multi-worker mode) whichever worker wakes first takes
    each new connection, and under light load one worker often took them all while the other
    idled, its sandbox slot with it. With a socket each, the kernel spreads new connections
    evenly over the workers. SIGTERM and SIGINT are passed on; each worker shuts down
    gracefully, then the process ends by that signal (a worker that failed: its status)."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_reuseport_worker, args=(options,)) for _ in range(workers)]
    for process in processes:
        process.start()

    received: list[int] = []

    def pass_on(signum: int, _frame: object) -> None:
        received.append(signum)
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    for process in processes:
        process.join()
    failed = [
        code
        for code in (p.exitcode or 0 for p in processes)
        if code not in (0, *(-s for s in received))
    ]
    if failed:
        return failed[0] if failed[0] > 0 else 128 - failed[0]
    if received:
        # As one uvicorn process does: once shut down, end by the signal that asked for it.
        signal.signal(received[0], signal.SIG_DFL)
        os.kill(os.getpid(), received[0])
    return 0
