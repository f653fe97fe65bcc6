"""Settings: every knob Koan has, read from `KOAN_*` environment variables or a `.env` file."""

from __future__ import annotations

import secrets
from decimal import Decimal
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "production", "test"]

_MIN_SECRET_LENGTH = 32
_ENV_PREFIX = "KOAN_"
# What both structlog and uvicorn take for KOAN_LOG_LEVEL.
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_LLM_KINDS = ("openai", "anthropic", "offline")


class Settings(BaseSettings):
    """Koan's configuration; see docs/operations.md for what each setting does."""

    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Environment = "development"
    secret_key: SecretStr = SecretStr("")
    data_dir: Path = Path("var")
    database_url: str = ""
    # PostgreSQL connections each worker keeps open, and how many more it may open at a peak
    # (each costs the server a process to fork and tear down). Size the kept ones for a class's
    # burst; workers x (pool + overflow) must stay under PostgreSQL's max_connections.
    database_pool_size: int = Field(default=20, ge=1, le=1000)
    database_max_overflow: int = Field(default=20, ge=0, le=1000)
    # How long a request waits for a free connection before it is answered 503 (Retry-After).
    database_pool_timeout_s: float = Field(default=30.0, gt=0, le=300)
    redis_url: str = ""
    cache_prefix: str = "koan:"
    base_url: str = "http://127.0.0.1:8000"
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: comma-separated
    # addresses or CIDRs (e.g. "127.0.0.1,10.0.0.0/8"). Empty: the headers are ignored.
    trusted_proxies: str = ""
    log_level: str = "INFO"
    # "json" (one object a line, for a log collector), "console" (aligned text, for people), or
    # "auto": json in production, console elsewhere.
    log_format: Literal["auto", "json", "console"] = "auto"
    # GET /metrics: "off", "open", or a bearer token Prometheus must send. Unset: open in
    # development, off in production (see docs/operations.md).
    metrics: SecretStr | None = None
    # Requests of one worker worked on at once; more wait their turn in order of arrival
    # (koan/turns.py). A turn is given back when the response starts, when the request waits
    # on something slow (the sandbox, a model, a password hash), and at the latest after
    # request_turn_lease_s. 0: no turns.
    request_turns: int = Field(default=4, ge=0, le=10_000)
    request_turn_lease_s: float = Field(default=0.25, gt=0, le=60)

    # Mail: with no SMTP host, mail goes to the development outbox (`koan mail list`).
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = True
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=600)
    mail_from: str = "Koan <koan@localhost>"
    # Mail goes out after the response; a failed delivery is tried this many times in all,
    # waiting the backoff (doubled each time) in between, then logged as mail.failed.
    mail_attempts: int = Field(default=3, ge=1, le=10)
    mail_retry_backoff_s: float = Field(default=2.0, ge=0)

    # Tokens and sessions.
    access_token_ttl_s: int = Field(default=15 * 60, ge=30)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    verify_token_ttl_s: int = Field(default=24 * 3600, ge=60)
    reset_token_ttl_s: int = Field(default=3600, ge=60)
    # A refresh token spent this recently returns the pair it was rotated into (two tabs
    # refreshing at once) instead of counting as reuse; 0 turns the grace off.
    refresh_grace_s: float = Field(default=10.0, ge=0, le=60)
    # How long a browser that logged in stays trusted to skip the account's login ceiling.
    device_cookie_ttl_s: int = Field(default=365 * 24 * 3600, ge=60)
    # A form posted after the login lapsed is kept this long for the page to put back once the
    # learner has logged in again (koan.web.kept), and this many times per client address.
    kept_form_ttl_s: int = Field(default=3600, ge=60)
    kept_form_limit_per_address: str = "30/hour"
    secure_cookies: bool | None = None  # None: secure in production only

    # Argon2id cost; tests lower these through the environment, never through a code branch.
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=8)
    password_parallelism: int = Field(default=2, ge=1)

    # Throttling (the `limits` library's rate strings).
    # Failed logins on one account from one client (an address, or a device that logged in
    # to it before); the ceiling counts every untrusted client's failures on the account, high
    # enough that only guessing spread over many addresses reaches it (logged and counted).
    login_limit_per_account_client: str = "5/minute;20/hour"
    login_limit_per_account: str = "100/hour;300/day"
    login_limit_per_address: str = "20/minute;100/hour"
    register_limit_per_address: str = "10/hour"
    resend_verification_limit: str = "3/hour"
    password_reset_limit: str = "3/hour"
    login_slowdown_step_s: float = Field(default=0.25, ge=0)
    login_slowdown_cap_s: float = Field(default=2.0, ge=0)

    # Submissions, per learner: how many may be graded at once (more are kept, not graded),
    # how often they may come, and how many per exercise keep their code and output.
    submissions_in_flight: int = Field(default=2, ge=1)
    submission_limit: str = "20/minute;300/hour"
    submission_history: int = Field(default=25, ge=1)
    # How often each server process looks for gradings a crash or restart interrupted (they are
    # recorded as errors, the code kept): start-up alone would leave one sent just before a
    # restart waiting for the grader until the next start.
    interrupted_sweep_s: float = Field(default=60.0, gt=0)
    submission_output_chars: int = Field(default=16 * 1024, ge=256)

    # Who may create classes: any verified user, or administrators only.
    class_creators: Literal["anyone", "admins"] = "anyone"
    # Wrong join codes one account may try (joining or previewing): a code is the only key to
    # a class, so guessing them must stay slow.
    class_code_limit: str = "10/minute;50/day"
    # Invitation mails one account may have sent (each address counts): an invitation carries
    # text its sender chose (their name, the class's) to any address, so without a bound any
    # verified account could send mail in bulk through this server.
    class_invite_limit: str = "1000/day"
    class_invite_ttl_days: int = Field(default=14, ge=1)

    # Adaptive practice: the predicted chance of success the daily exercise aims for.
    adaptive_target_success: float = Field(default=0.75, gt=0.3, lt=0.95)

    # Grading sandbox (see docs/sandbox.md). Per-exercise limits may only be lower.
    sandbox_slots: int = Field(default=0, ge=0, description="Concurrent gradings; 0 = cores.")
    sandbox_queue_size: int = Field(default=32, ge=0)
    # More may wait, as many as the slots' measured throughput starts within max_wait_s, up to
    # the ceiling (each waiting job holds its code and tests in memory).
    sandbox_max_wait_s: float = Field(default=30.0, ge=0, le=3600)
    sandbox_queue_ceiling: int = Field(default=1024, ge=0, le=1_000_000)
    sandbox_min_tier: Literal["rlimits", "namespaces", "full"] | None = None
    sandbox_cpu_s: float = Field(default=2.0, gt=0, le=60)
    sandbox_wall_s: float = Field(default=5.0, gt=0, le=120)
    sandbox_memory_mb: int = Field(default=256, ge=32, le=8192)
    sandbox_output_bytes: int = Field(default=64 * 1024, ge=1024)
    sandbox_disk_mb: int = Field(default=16, ge=1, le=1024)
    sandbox_python: str = "/usr/bin/python3"
    sandbox_node: str = "/usr/bin/node"
    # Address space for node: V8 reserves about 768 MB before it runs anything.
    sandbox_js_memory_mb: int = Field(default=1024, ge=768, le=65536)
    # One uid per running slot, claimed from base_uid upwards (system and nobody uids excluded).
    sandbox_base_uid: int = Field(default=60000, ge=1000, le=65533)
    sandbox_uid_range: int = Field(default=1000, ge=1, le=64534)
    # Start node for a slot's next JavaScript run while the slot is idle (a node per slot).
    sandbox_js_spare: bool = True

    # The AI tutor (docs/llm.md, docs/tutor.md). With the defaults, the offline tutor answers.
    llm_provider: Literal["openai", "anthropic", "offline"] = "offline"
    llm_base_url: str = ""
    llm_api_key: SecretStr = SecretStr("")
    llm_model: str = ""
    llm_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # Comma-separated kinds tried in order after the primary, e.g. "offline" or
    # "anthropic,offline"; a non-offline fallback uses the llm_fallback_* values below.
    llm_fallback: str = ""
    llm_fallback_base_url: str = ""
    llm_fallback_api_key: SecretStr = SecretStr("")
    llm_fallback_model: str = ""
    llm_context_tokens: int = Field(default=16_000, ge=1024)
    llm_reply_max_tokens: int = Field(default=700, ge=16, le=16_000)
    llm_pricing_file: Path | None = None
    llm_user_daily_budget_usd: Decimal = Field(default=Decimal("0.50"), ge=0)
    llm_global_daily_budget_usd: Decimal | None = Field(default=None, ge=0)
    llm_chat_limit: str = "20/minute;300/day"
    llm_generation_limit: str = "5/hour;20/day"
    llm_leak_threshold: float = Field(default=0.6, gt=0, le=1)
    # How much code the tutor may show (docs/tutor.md): socratic | hints | open.
    tutor_strictness: Literal["socratic", "hints", "open"] = "socratic"
    llm_generation_retries: int = Field(default=2, ge=0, le=5)
    # With a model configured, the daily picker has one written when the bank has nothing new
    # at the learner's level (in the background, on the learner's budget).
    generation_refill: bool = True
    llm_cache_ttl_s: int = Field(default=7 * 24 * 3600, ge=0)
    # Longest a reply may hold the learner's one-reply-in-flight lock (crash safety).
    llm_reply_lock_ttl_s: float = Field(default=180.0, gt=0)

    @field_validator("llm_global_daily_budget_usd", "llm_pricing_file", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `KOAN_LLM_GLOBAL_DAILY_BUDGET_USD=` in a .env file means "no limit", not an error.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return level

    @field_validator(
        "kept_form_limit_per_address", "login_limit_per_account_client",
        "login_limit_per_account", "login_limit_per_address", "register_limit_per_address",
        "resend_verification_limit", "password_reset_limit", "submission_limit",
        "class_code_limit", "class_invite_limit", "llm_chat_limit", "llm_generation_limit",
    )  # fmt: skip
    @classmethod
    def _rate_parses(cls, value: str) -> str:
        # Read on the first request that is limited: a typo would fail each of them with a 500.
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate such as '10/minute' or '5/minute;100/day' "
                "(per second, minute, hour, day, month or year)"
            ) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_parses(cls, value: str) -> str:
        # Read when the first cache or limiter is built: said here, not as a traceback. The
        # URL itself is never repeated: it may hold a password.
        from redis.connection import parse_url

        value = value.strip()
        if value:
            if not value.startswith(_REDIS_SCHEMES):
                raise ValueError(f"must start with {', '.join(_REDIS_SCHEMES)} (or be empty)")
            try:
                parse_url(value)  # type: ignore[no-untyped-call]
            except ValueError as exc:
                raise ValueError(f"is not a Redis URL ({exc})") from None
        return value

    @field_validator("base_url", "llm_base_url", "llm_fallback_base_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        # Mailed links and model calls need a whole address: "koan.example.com" alone would
        # mail links no client opens, and every tutor call would fail.
        value = value.strip()
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an address such as https://koan.example.com")
        return value

    @field_validator("llm_fallback")
    @classmethod
    def _known_fallbacks(cls, value: str) -> str:
        for kind in (item.strip().lower() for item in value.split(",")):
            if kind and kind not in _LLM_KINDS:
                raise ValueError(f"{kind!r} is not one of {', '.join(_LLM_KINDS)}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                try:
                    ip_network(item.strip(), strict=False)
                except ValueError as exc:
                    raise ValueError(f"{item.strip()!r} is not an address or CIDR") from exc
        return value

    @property
    def trusted_proxy_networks(self) -> list[IPv4Network | IPv6Network]:
        items = (item.strip() for item in self.trusted_proxies.split(","))
        return [ip_network(item, strict=False) for item in items if item]

    @field_validator("metrics")
    @classmethod
    def _metrics_token_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        raw = value.get_secret_value().strip() if value else ""
        if raw and raw.lower() not in {"off", "open"} and len(raw) < 16:
            raise ValueError("must be off, open, or a token of at least 16 characters")
        return value

    @field_validator("database_url")
    @classmethod
    def _no_sync_drivers(cls, value: str) -> str:
        # Users paste the URL their other tools use; Koan needs the async drivers.
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        elif value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value.split(":///", 1)[1]
        if value:
            _check_database_url(value)
        return value

    @model_validator(mode="after")
    def _check_sandbox(self) -> Settings:
        if self.sandbox_queue_ceiling < self.sandbox_queue_size:
            raise ValueError(
                "KOAN_SANDBOX_QUEUE_CEILING must be at least KOAN_SANDBOX_QUEUE_SIZE "
                f"({self.sandbox_queue_ceiling} < {self.sandbox_queue_size})"
            )
        if self.sandbox_base_uid + self.sandbox_uid_range > 65534:
            raise ValueError(
                "KOAN_SANDBOX_BASE_UID + KOAN_SANDBOX_UID_RANGE must stay below 65534 (nobody)"
            )
        return self

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.env == "production":
            key = self.secret_key.get_secret_value()
            if len(key) < _MIN_SECRET_LENGTH:
                raise ValueError(
                    f"KOAN_SECRET_KEY must be set to at least {_MIN_SECRET_LENGTH} characters "
                    "in production"
                )
        return self

    @property
    def sandbox_minimum(self) -> str:
        """The weakest sandbox tier allowed to grade: full in production unless configured."""
        if self.sandbox_min_tier:
            return self.sandbox_min_tier
        return "full" if self.is_production else "rlimits"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def log_json(self) -> bool:
        return self.log_format == "json" or (self.log_format == "auto" and self.is_production)

    @property
    def cookies_secure(self) -> bool:
        return self.is_production if self.secure_cookies is None else self.secure_cookies

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'koan.db').as_posix()}"

    @cached_property
    def signing_key(self) -> str:
        """The secret key; in development a generated one is kept under the data dir."""
        key = self.secret_key.get_secret_value()
        if key:
            return key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


def _check_database_url(value: str) -> None:
    """Refuse a URL whose parts cannot be read (a port that is not a number), never repeating
    it (it may hold a password); a driver Koan lacks is said when the engine is made."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(value)
    except ArgumentError:
        return
    except ValueError as exc:
        raise ValueError(f"cannot be read as a database URL ({exc})") from None


def settings_problem(exc: ValidationError) -> str:
    """One line saying which KOAN_* variables are wrong and why (never their values: one may
    be a secret)."""
    problems = []
    for error in exc.errors():
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{_ENV_PREFIX}{where.upper()}: {message}" if where else message)
    return "Invalid settings: " + "; ".join(problems) + "."
