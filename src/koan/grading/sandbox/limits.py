"""Per-run resource limits and how they become rlimits inside the sandbox."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Language = Literal["python", "javascript"]

# Open files: Python needs a handful, node about 30 (epoll, eventfds, its thread pool).
OPEN_FILES = 256
# Tasks (processes + threads) of the slot uid: node starts ~10 threads; at the top tier forks
# are refused by seccomp anyway, so this only bounds threads and lower-tier fork bombs.
TASKS = 64
# Inodes on the per-run tmpfs: bounds a flood of empty files that the byte size would not.
INODES = 4096


@dataclass(frozen=True)
class Limits:
    """What one grading run may use; exercises may ask for more, capped by the server."""

    cpu_s: float = 2.0
    wall_s: float = 5.0
    memory_mb: int = 256
    output_bytes: int = 65536
    disk_mb: int = 16

    def __post_init__(self) -> None:
        for name in ("cpu_s", "wall_s", "memory_mb", "output_bytes", "disk_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")

    def capped(self, caps: Limits) -> Limits:
        """These limits, none above the matching cap."""
        return Limits(
            cpu_s=min(self.cpu_s, caps.cpu_s),
            wall_s=min(self.wall_s, caps.wall_s),
            memory_mb=min(self.memory_mb, caps.memory_mb),
            output_bytes=min(self.output_bytes, caps.output_bytes),
            disk_mb=min(self.disk_mb, caps.disk_mb),
        )


DEFAULT_MAX_LIMITS = Limits(
    cpu_s=10.0, wall_s=20.0, memory_mb=1024, output_bytes=1 << 20, disk_mb=64
)


def cpu_rlimit(cpu_s: float) -> tuple[int, int]:
    """RLIMIT_CPU (soft, hard): SIGXCPU at the soft limit, SIGKILL one second later."""
    soft = max(1, math.ceil(cpu_s))
    return soft, soft + 1


def address_space_mb(language: Language, limits: Limits, js_memory_mb: int) -> int:
    """RLIMIT_AS for the run: the memory limit for Python; room for V8's reservations for node."""
    if language == "javascript":
        # V8 reserves far more address space than it uses (≥ 768 MB or it aborts at start-up);
        # the heap itself is bounded by --max-old-space-size.
        return max(js_memory_mb, limits.memory_mb + 768)
    return limits.memory_mb


def run_plan(language: Language, limits: Limits, js_memory_mb: int) -> dict[str, Any]:
    """The limits section of a job, as the in-sandbox launcher applies them."""
    cpu_soft, cpu_hard = cpu_rlimit(limits.cpu_s)
    return {
        "cpu_soft": cpu_soft,
        "cpu_hard": cpu_hard,
        "as_bytes": address_space_mb(language, limits, js_memory_mb) << 20,
        "heap_mb": limits.memory_mb,
        "fsize_bytes": limits.disk_mb << 20,
        "disk_mb": limits.disk_mb,
        "inodes": INODES,
        "nofile": OPEN_FILES,
        "nproc": TASKS,
    }
