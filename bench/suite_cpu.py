"""Where the machine's CPU goes while a command runs (the test suite, a fresh-clone CI run).

    .venv/bin/python bench/suite_cpu.py [--top 15] [--interval 0.3] [--own] -- COMMAND [ARG ...]

For example `bench/suite_cpu.py -- .venv/bin/pytest -n 2 --dist loadgroup` with the CI
environment set. It runs COMMAND and reports its wall time, how much of the machine's CPU was
busy and idle meanwhile (from /proc/stat, every process counted: PostgreSQL, Chromium's
double-forked renderers and the sandbox's runs included, which `time` misses when they are not
waited for by the command), and the CPU of each kind of process (its name, and Chromium's
`--type`), read from /proc/<pid>/stat every `--interval` seconds. A process that lives shorter
than the interval is counted with the parent that waits for it (the sandbox's runs under the
launcher's "reaped" column); PostgreSQL's total includes its exited backends. A process that
was sampled and later waited for is in both columns (its own, and its parent's "reaped"): a
closed Chromium renderer is under its zygote's "reaped" too, so add the columns only for
processes too short-lived to be sampled.

With `--own`, only COMMAND and the processes it started (seen with a parent already counted)
are counted, so other work on a shared machine stays out of the table; a server that detaches
before it is sampled (`pg_ctl`'s PostgreSQL) is then left out too.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def machine() -> tuple[int, int]:
    """(busy, idle) jiffies of the whole machine."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq + steal, idle + iowait


def kind(pid: str, comm: str) -> str:
    """A process's kind: its name, with Chromium's process type."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return comm
    if len(argv) == 1:  # Chromium's helpers write their command line back as one string
        argv = argv[0].split()
    types = [a.decode() for a in argv if a.startswith(b"--type=")]
    name = comm
    if comm.startswith("python") and len(argv) > 1:
        name = f"{comm} {os.path.basename(argv[1].decode(errors='replace'))}"
    return " ".join([name, *types])


def snapshot() -> dict[int, tuple[str, int, int, int]]:
    """pid -> (kind, own CPU, CPU of waited-for children, parent pid), in jiffies."""
    found: dict[int, tuple[str, int, int, int]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        f = stat[stat.rindex(")") + 2 :].split()
        found[int(pid)] = (
            kind(pid, comm),
            int(f[11]) + int(f[12]),
            int(f[13]) + int(f[14]),
            int(f[1]),
        )
    return found


def adopt(ours: set[int], seen: dict[int, tuple[str, int, int, int]]) -> None:
    """Add to `ours` every process in `seen` whose parent is in it (children of children too)."""
    grew = True
    while grew:
        new = {pid for pid, (*_, parent) in seen.items() if parent in ours} - ours
        ours |= new
        grew = bool(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--interval", type=float, default=0.3)
    parser.add_argument(
        "--own", action="store_true", help="count only COMMAND and the processes it started"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")

    start = snapshot()
    last = dict(start)
    ours: set[int] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(args.interval):
            seen = snapshot()
            adopt(ours, seen)
            last.update(seen)

    sampler = threading.Thread(target=sample, daemon=True)
    busy0, idle0 = machine()
    began = time.monotonic()
    process = subprocess.Popen(command)
    ours.add(process.pid)
    sampler.start()
    status = process.wait()
    wall = time.monotonic() - began
    done.set()
    sampler.join()
    last.update(snapshot())
    busy1, idle1 = machine()

    own: collections.Counter[str] = collections.Counter()
    reaped: collections.Counter[str] = collections.Counter()
    for pid, (name, cpu, children, _) in last.items():
        if args.own and pid not in ours:
            continue
        _, cpu0, children0, _ = start.get(pid, (name, 0, 0, 0))
        label = re.sub(r"\s+", " ", name)
        own[label] += cpu - cpu0
        reaped[label] += children - children0
    print(f"command exit status {status}, wall {wall:.1f} s on {os.cpu_count()} cores")
    print(f"machine: busy {(busy1 - busy0) / TICK:.1f} CPU-s, idle {(idle1 - idle0) / TICK:.1f} s")
    print(f"processes counted: {sum(own.values()) / TICK:.1f} CPU-s of their own")
    print(f"{'own CPU-s':>10} {'reaped':>8}  process kind")
    for label, cpu in own.most_common(args.top):
        print(f"{cpu / TICK:10.1f} {reaped[label] / TICK:8.1f}  {label}")
    raise SystemExit(status)


if __name__ == "__main__":
    main()
