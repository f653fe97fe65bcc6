"""Errors the sandbox raises besides koan.errors.GraderBusy."""

from __future__ import annotations

from koan.errors import ServiceUnavailable


class SandboxUnavailable(ServiceUnavailable):
    """503: this machine cannot isolate runs as strongly as configured, or the grader broke."""

    code = "SandboxUnavailable"
