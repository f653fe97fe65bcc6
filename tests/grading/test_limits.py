"""The sandbox's settings: every queue and sandbox limit is a KOAN_SANDBOX_* setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from koan.config import Settings
from koan.grading.limits import sandbox_config
from koan.grading.sandbox import SandboxConfig


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(f"KOAN_{name.upper()}", value)
    return Settings(_env_file=None)


def test_the_queue_and_sandbox_settings_default_to_the_sandboxs_own_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "SANDBOX_QUEUE_SIZE",
        "SANDBOX_MAX_WAIT_S",
        "SANDBOX_QUEUE_CEILING",
        "SANDBOX_JS_MEMORY_MB",
        "SANDBOX_BASE_UID",
        "SANDBOX_UID_RANGE",
        "SANDBOX_JS_SPARE",
    ):
        monkeypatch.delenv(f"KOAN_{name}", raising=False)
    config = sandbox_config(Settings(_env_file=None))
    default = SandboxConfig()

    assert (config.queue_size, config.max_wait_s, config.queue_ceiling) == (32, 30.0, 1024)
    assert config.js_memory_mb == default.js_memory_mb == 1024
    assert (config.base_uid, config.uid_range) == (default.base_uid, default.uid_range)
    assert config.js_spare is default.js_spare is True


def test_the_environment_sets_the_queue_and_sandbox_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = sandbox_config(
        settings(
            monkeypatch,
            sandbox_queue_size="8",
            sandbox_max_wait_s="5.5",
            sandbox_queue_ceiling="64",
            sandbox_js_memory_mb="2048",
            sandbox_base_uid="50000",
            sandbox_uid_range="200",
            sandbox_js_spare="false",
        )
    )

    assert (config.queue_size, config.max_wait_s, config.queue_ceiling) == (8, 5.5, 64)
    assert config.js_memory_mb == 2048
    assert (config.base_uid, config.uid_range) == (50000, 200)
    assert config.js_spare is False


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"sandbox_max_wait_s": "-1"}, "sandbox_max_wait_s"),
        ({"sandbox_queue_ceiling": "-1"}, "sandbox_queue_ceiling"),
        ({"sandbox_queue_size": "64", "sandbox_queue_ceiling": "16"}, "SANDBOX_QUEUE_CEILING"),
        ({"sandbox_js_memory_mb": "512"}, "sandbox_js_memory_mb"),
        ({"sandbox_base_uid": "500"}, "sandbox_base_uid"),
        ({"sandbox_uid_range": "0"}, "sandbox_uid_range"),
        ({"sandbox_base_uid": "65000", "sandbox_uid_range": "1000"}, "SANDBOX_UID_RANGE"),
    ],
)
def test_settings_the_sandbox_would_refuse_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        settings(monkeypatch, **env)
