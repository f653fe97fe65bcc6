"""What taking a turn costs a request when nobody waits: Koan's Turns middleware around a bare
Starlette route, against the same route without it.

    .venv/bin/python bench/turns_overhead.py [--requests 20000] [--rounds 3]

The ASGI app is called directly (no server, no network), a POST with a small body each time,
so the difference is the middleware's own work: reading the body first, the turn (a semaphore,
its lease timer) and the wait it reports. Prints the CPU per request of each, per round.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from koan.app import MAX_BODY_BYTES
from koan.ops import metrics
from koan.turns import Turns


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"ok": len(await request.body())})


def build(turns: bool) -> ASGIApp:
    app = Starlette(routes=[Route("/x", hello, methods=["POST"])])
    if not turns:
        return app
    return Turns(
        app, slots=4, lease_s=0.25, max_body_bytes=MAX_BODY_BYTES, on_wait=metrics.turn_waited
    )


async def cpu_per_request(app: ASGIApp, requests: int) -> float:
    """Microseconds of CPU per request."""
    scope = {
        "type": "http", "method": "POST", "path": "/x", "headers": [], "query_string": b"",
        "root_path": "", "scheme": "http", "server": ("bench", 80),
    }  # fmt: skip

    async def receive() -> Message:
        return {"type": "http.request", "body": b'{"code": "print(1)"}', "more_body": False}

    async def send(message: Message) -> None:
        return None

    started = time.process_time()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    return (time.process_time() - started) / requests * 1e6


async def bench(args: argparse.Namespace) -> None:
    with metrics.bound(metrics.Metrics()):  # the wait is recorded, as under the request log
        for round_ in range(1, args.rounds + 1):
            plain = await cpu_per_request(build(turns=False), args.requests)
            turns = await cpu_per_request(build(turns=True), args.requests)
            print(  # noqa: T201
                f"round {round_}: without turns {plain:.1f} µs, with turns {turns:.1f} µs "
                f"a request (+{turns - plain:.1f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
