"""Which isolation mechanisms a sandbox uses, and the tier they add up to."""

from __future__ import annotations

from dataclasses import dataclass

from koan.grading.sandbox.report import Tier


@dataclass(frozen=True)
class Features:
    """Mechanisms in use; each is used whenever it works, the tier only names the result."""

    uid_switch: bool  # each slot runs as its own unprivileged uid (needs root)
    bubblewrap: str | None  # path of bwrap when runs get namespaces, a read-only root, a tmpfs
    seccomp: bool  # syscall filters on the launcher and on every run

    @property
    def tier(self) -> Tier:
        """The tier these mechanisms reach."""
        if self.uid_switch and self.bubblewrap and self.seccomp:
            return Tier.FULL
        if self.uid_switch and self.bubblewrap:
            return Tier.NAMESPACES
        return Tier.RLIMITS

    def describe(self) -> str:
        """Human summary, for logs and errors."""
        parts = ["rlimits"]
        if self.uid_switch:
            parts.append("uid switch")
        if self.bubblewrap:
            parts.append("bubblewrap")
        if self.seccomp:
            parts.append("seccomp")
        return " + ".join(parts)
