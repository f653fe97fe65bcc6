"""The limits one grading run gets: the exercise's own, never beyond the server's."""

from __future__ import annotations

from koan.config import Settings
from koan.grading.sandbox import Limits, SandboxConfig, Tier


def server_limits(settings: Settings) -> Limits:
    return Limits(
        cpu_s=settings.sandbox_cpu_s,
        wall_s=settings.sandbox_wall_s,
        memory_mb=settings.sandbox_memory_mb,
        output_bytes=settings.sandbox_output_bytes,
        disk_mb=settings.sandbox_disk_mb,
    )


def effective_limits(
    server: Limits, *, time_limit_s: float | None, memory_limit_mb: int | None
) -> Limits:
    """Per-exercise overrides, capped by the server's limits."""
    return Limits(
        cpu_s=min(time_limit_s or server.cpu_s, server.cpu_s),
        wall_s=server.wall_s,
        memory_mb=min(memory_limit_mb or server.memory_mb, server.memory_mb),
        output_bytes=server.output_bytes,
        disk_mb=server.disk_mb,
    )


def sandbox_config(settings: Settings) -> SandboxConfig:
    """The grading sandbox as the settings describe it."""
    kwargs: dict[str, object] = {
        "queue_size": settings.sandbox_queue_size,
        "max_wait_s": settings.sandbox_max_wait_s,
        "queue_ceiling": settings.sandbox_queue_ceiling,
        "min_tier": Tier[settings.sandbox_minimum.upper()],
        "python": settings.sandbox_python,
        "node": settings.sandbox_node,
        "js_memory_mb": settings.sandbox_js_memory_mb,
        "base_uid": settings.sandbox_base_uid,
        "uid_range": settings.sandbox_uid_range,
        "js_spare": settings.sandbox_js_spare,
        "default_limits": server_limits(settings),
        # Per-exercise limits may lower these, never raise them.
        "max_limits": server_limits(settings),
    }
    if settings.sandbox_slots:
        kwargs["slots"] = settings.sandbox_slots
    return SandboxConfig(**kwargs)  # type: ignore[arg-type]
