"""Running untrusted submissions against exercise tests, isolated, in milliseconds.

See docs/sandbox.md for the isolation tiers, the verdict channel and the measured figures.
"""

from koan.grading.sandbox.config import SandboxConfig
from koan.grading.sandbox.errors import SandboxUnavailable
from koan.grading.sandbox.limits import Language, Limits
from koan.grading.sandbox.report import GradeReport, ProgramOutcome, TestOutcome, Tier, TrialReport
from koan.grading.sandbox.sandbox import Sandbox
from koan.grading.sandbox.sync import GradeJob, SyncSandbox, grade_sync
from koan.grading.sandbox.tiers import probe_tier

__all__ = [
    "GradeJob",
    "GradeReport",
    "Language",
    "Limits",
    "ProgramOutcome",
    "Sandbox",
    "SandboxConfig",
    "SandboxUnavailable",
    "SyncSandbox",
    "TestOutcome",
    "Tier",
    "TrialReport",
    "grade_sync",
    "probe_tier",
]
