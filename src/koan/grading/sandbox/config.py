"""How a Sandbox is set up: slots, queue, interpreters, caps and the weakest tier accepted."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from koan.grading.sandbox.limits import DEFAULT_MAX_LIMITS, Limits
from koan.grading.sandbox.report import Tier


def _cpu_count() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of one Sandbox; the defaults suit a server with nothing else to configure."""

    slots: int = field(default_factory=_cpu_count)
    queue_size: int = 32  # jobs that may always wait beyond the running ones before GraderBusy
    # More may wait, as many as the measured throughput starts within max_wait_s, up to the
    # ceiling (each waiting job holds its code and tests in memory).
    max_wait_s: float = 30.0
    queue_ceiling: int = 1024
    min_tier: Tier = Tier.FULL
    python: str = "/usr/bin/python3"
    node: str = "/usr/bin/node"
    max_limits: Limits = DEFAULT_MAX_LIMITS  # caps for per-exercise overrides
    js_memory_mb: int = 1024  # address space for node: V8 aborts below ~768 MB
    base_uid: int = 60000  # first uid tried for slots; one uid per running slot
    uid_range: int = 1000  # uids tried from base_uid (several servers share a machine)
    default_limits: Limits = field(default_factory=Limits)
    # Lets graded Python use ctypes (native calls and raw memory). Only for testing the kernel
    # layers beneath the interpreter's guard: with it, a run can read its own memory and so
    # forge its verdict.
    python_native: bool = False
    # Start node for a slot's next JavaScript run while the slot is idle (after a JavaScript
    # run, and at start): the run then skips node's start-up. Costs a node process per slot.
    js_spare: bool = True
    # Fork and set up a slot's next Python run while the slot is idle (after a Python run):
    # the run then starts when its job arrives. Costs a forked, waiting process per slot.
    python_spare: bool = True

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError("SandboxConfig.slots must be at least 1")
        if self.queue_size < 0 or self.queue_ceiling < 0 or self.max_wait_s < 0:
            raise ValueError("SandboxConfig queue sizes and max_wait_s must not be negative")
        if self.base_uid < 1000 or self.base_uid + self.uid_range > 65534:
            raise ValueError("SandboxConfig.base_uid must leave system and nobody uids alone")
