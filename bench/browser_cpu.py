"""The CPU one browser-test step costs Chromium and Playwright's driver, per browser, flags and
way of logging in.

    .venv/bin/python bench/browser_cpu.py [--rounds 2] [--iterations 8] [VARIANT ...]

A live Koan server as the browser tests start it (tests/web/live.py: uvicorn on a thread of this
process, a SQLite file, the built-in bank), and for each variant its own browser. One iteration:
a new browser context and page (or, with `shared`, one context kept for the variant with its
cookies cleared after each iteration), a new learner logged in (`form`: the login page filled
and sent, then the dashboard it leads to; `api`: POST /api/v1/auth/login from the context, whose
cookies the page then uses) and the first exercise's page opened `navs` times. After one
iteration left uncounted, the CPU of every process this one started (Playwright's driver,
Chromium and its renderers; closed renderers through the zygote that waited for them) is read
from /proc around the iterations and reported per iteration, with this process's own (the
server, the Playwright client) beside it. Each round runs every variant once, in turn.

A VARIANT is a JSON object: `exe` (default /usr/bin/chromium-headless-shell), `args` (flags
added to the browser tests' own), `login` ("form" or "api", default "api"), `shared` (true),
`navs` (default 1). Without any, four are compared: the headless shell with each login, the full
`chromium` with the login page, and the headless shell with one shared context.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import expect, sync_playwright  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402
from tests.fixtures.factories import PASSWORD, create_user  # noqa: E402
from tests.web.live import LiveServer  # noqa: E402

from koan.models import Exercise, User  # noqa: E402
from koan.resources import Resources  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
FLAGS = [  # the browser tests' own (tests/web/test_browser.py)
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULTS: list[dict[str, Any]] = [
    {"login": "form"},
    {"login": "api"},
    {"exe": "/usr/bin/chromium", "login": "form"},
    {"login": "api", "shared": True},
]


def descendants_cpu() -> tuple[float, float]:
    """(CPU-s of this process, CPU-s of its live descendants and of the children they reaped)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    cpu: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2 :].split()
        children[int(f[1])].append(int(name))
        cpu[int(name)] = sum(int(v) for v in f[11:15])
    me = os.getpid()
    own = Path(f"/proc/{me}/stat").read_text()
    f = own[own.rindex(")") + 2 :].split()
    total, stack = 0, list(children[me])
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0)
        stack += children[pid]
    return (int(f[11]) + int(f[12])) / TICK, total / TICK


class Step:
    """One iteration of a variant: a learner logged in, on the exercise's page."""

    def __init__(
        self,
        server: LiveServer,
        browser: Any,
        shared: Any,
        variant: dict[str, Any],
        exercise: str,
        options: dict[str, Any],
    ) -> None:
        self.server, self.browser, self.shared = server, browser, shared
        self.variant, self.exercise, self.options = variant, exercise, options

    def run(self) -> None:
        user = self.server.run(new_user)
        context = self.shared or self.browser.new_context(**self.options)
        page = context.new_page()
        if self.variant.get("login", "api") == "form":
            page.goto("/login")
            page.get_by_label("Email").fill(user.email)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(re.compile("/dashboard"))
        else:
            sent = {"email": user.email, "password": PASSWORD}
            assert context.request.post("/api/v1/auth/login", data=sent).ok
        for _ in range(self.variant.get("navs", 1)):
            page.goto(f"/exercises/{self.exercise}")
            expect(page.get_by_role("textbox", name="Your code")).to_be_visible()
        if self.shared is None:
            context.close()
        else:
            page.close()
            context.clear_cookies()


async def new_user(session: AsyncSession, res: Resources) -> User:
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    return await create_user(session, res, email=email, onboarded=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("variants", nargs="*", type=json.loads)
    args = parser.parse_args()
    variants: list[dict[str, Any]] = args.variants or DEFAULTS

    server = LiveServer(Path(tempfile.mkdtemp()), smtp_port=1, min_tier=None)
    server.start()

    async def first_exercise(session: AsyncSession, res: Resources) -> str:
        row = await session.execute(select(Exercise.id).order_by(Exercise.slug).limit(1))
        return str(row.scalar_one())

    exercise = server.run(first_exercise)
    before = load()
    results: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    with sync_playwright() as pw:
        for _ in range(args.rounds):
            for variant in variants:
                browser = pw.chromium.launch(
                    executable_path=variant.get("exe", "/usr/bin/chromium-headless-shell"),
                    headless=True,
                    args=[*FLAGS, *variant.get("args", [])],
                )
                options: dict[str, Any] = {
                    "base_url": server.url,
                    "viewport": {"width": 1280, "height": 900},
                }
                shared = browser.new_context(**options) if variant.get("shared") else None

                step = Step(server, browser, shared, variant, exercise, options)
                step.run()
                own0, tree0 = descendants_cpu()
                for _ in range(args.iterations):
                    step.run()
                own1, tree1 = descendants_cpu()
                n = args.iterations
                results[json.dumps(variant)].append(((tree1 - tree0) / n, (own1 - own0) / n))
                browser.close()
    server.stop()
    print(f"CPU-s per iteration ({args.iterations} iterations a round), browser and driver / this")
    print(f"process (the server), one column per round; load average {before} -> {load()}")
    for name, rounds in results.items():
        print("  ".join(f"{tree:.3f} / {own:.3f}" for tree, own in rounds) + f"  {name}")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    if sys.platform != "linux":
        raise SystemExit("reads /proc: Linux only")
    main()
