"""What one Redis command costs Koan's process in the installed redis-py, in instructions.

    .venv/bin/python bench/redis_command_cost.py [--redis-url redis://127.0.0.1:6379/0]
        [--commands 1000]

Runs a small client twice under valgrind's callgrind (which counts the instructions a process
executes, not seconds, so the figure does not move with the machine's load): once with 200
commands, once with 200 + `--commands`. The difference, divided by `--commands`, is one
command's cost without the start-up: an `MGET` of three keys on a `BlockingConnectionPool`
with `decode_responses`, uvloop, as Koan's cache reads each caller's generation. Only the
client's instructions count; the Redis server's are its own.

To compare versions of the client, install each into a scratch environment and run this file
with its interpreter (the environment needs redis, hiredis and uvloop):

    python3 -m venv --without-pip /tmp/r64
    .venv/bin/uv pip install --python /tmp/r64/bin/python redis==6.4.0 hiredis==3.5.0 uvloop
    /tmp/r64/bin/python bench/redis_command_cost.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import callgrind_instructions  # noqa: E402

WARMUP = 200


def client(url: str, commands: int) -> None:
    import redis.asyncio as redis_asyncio
    import uvloop

    async def run() -> None:
        pool = redis_asyncio.BlockingConnectionPool.from_url(
            url, max_connections=100, timeout=2, decode_responses=True
        )
        redis = redis_asyncio.Redis(connection_pool=pool)
        await redis.set("koan-bench:a", "1")
        await redis.set("koan-bench:b", "2")
        for _ in range(commands):
            await redis.mget(["koan-bench:a", "koan-bench:b", "koan-bench:c"])
        await redis.delete("koan-bench:a", "koan-bench:b")
        await redis.aclose()
        await pool.disconnect()

    uvloop.run(run())


def instructions(url: str, commands: int) -> int:
    return callgrind_instructions(
        [sys.executable, __file__, "--client", str(commands), "--redis-url", url]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client is not None:
        client(args.redis_url, args.client)
        return
    import redis

    base = instructions(args.redis_url, WARMUP)
    more = instructions(args.redis_url, WARMUP + args.commands)
    per_command = (more - base) / args.commands
    print(f"redis-py {redis.__version__}: {per_command:,.0f} instructions per MGET")


if __name__ == "__main__":
    main()
