"""What one request costs the installed FastAPI in an app shaped like Koan's, in instructions.

    .venv/bin/python bench/framework_cost.py [--requests 500]

An app with eleven routers of eight routes each under /api/v1 (as Koan includes its domains)
and an account route with two dependencies (a header, then the caller) and a response model,
called as ASGI in the process (no server, no network), so only the framework's own work is
counted. Run twice under valgrind's callgrind, with 100 and 100 + `--requests` requests; the
difference divided by `--requests` is one request's instructions, whatever else the machine
runs. To compare versions, install each into a scratch environment and run this file with its
interpreter (as bench/redis_command_cost.py shows for redis-py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import callgrind_instructions  # noqa: E402

WARMUP = 100


class Account(BaseModel):
    id: str
    email: str
    name: str
    role: str
    verified: bool


def token(authorization: Annotated[str, Header()] = "") -> str:
    return authorization


def caller(bearer: Annotated[str, Depends(token)]) -> dict[str, Any]:
    return {"id": "1", "email": "a@b.c", "name": "A", "role": "learner", "verified": True}


async def me(account: Annotated[dict[str, Any], Depends(caller)]) -> dict[str, Any]:
    return account


def thing(x: str) -> dict[str, str]:
    return {"x": x}


def client(requests: int) -> None:
    app = FastAPI()
    for index in range(11):
        router = APIRouter()
        for route in range(8):
            router.add_api_route(f"/thing{index}/{route}/{{x}}", thing, methods=["GET", "POST"])
        if index == 1:
            router.add_api_route("/users/me", me, response_model=Account)
        app.include_router(router, prefix="/api/v1")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/users/me",
        "raw_path": b"/api/v1/users/me",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"koan"), (b"authorization", b"Bearer abc")],
        "client": ("127.0.0.1", 1),
        "server": ("koan", 80),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def run() -> None:
        for _ in range(requests):
            await app(dict(scope), receive, send)

    asyncio.run(run())
    if set(statuses) != {200}:
        raise SystemExit(f"the account route answered {sorted(set(statuses))}")


def instructions(requests: int) -> int:
    return callgrind_instructions([sys.executable, __file__, "--client", str(requests)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client is not None:
        client(args.client)
        return
    import fastapi
    import starlette

    per_request = (instructions(WARMUP + args.requests) - instructions(WARMUP)) / args.requests
    print(
        f"FastAPI {fastapi.__version__}, Starlette {starlette.__version__}: "
        f"{per_request:,.0f} instructions per request"
    )


if __name__ == "__main__":
    main()
