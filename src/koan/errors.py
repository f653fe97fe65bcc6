"""One error hierarchy for Koan; every error renders as {"error": "<Code>", "detail": "..."}."""

from __future__ import annotations


class KoanError(Exception):
    """Base of every error Koan reports to a client."""

    status_code: int = 400
    code: str = "BadRequest"
    # When true, the request's database work is committed even though this error is returned.
    keep_changes: bool = False

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None) -> None:
        # `class NotFound(KoanError, status=404)`: the code defaults to the class's name.
        super().__init_subclass__()
        if status is not None:
            cls.status_code = status
        cls.code = code or (cls.__name__ if status is not None else cls.code)

    def __init__(
        self,
        detail: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        keep_changes: bool | None = None,
    ) -> None:
        super().__init__(detail)
        if keep_changes is not None:
            self.keep_changes = keep_changes
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(KoanError, status=400):
    pass


class NotAuthenticated(KoanError, status=401):
    pass


class InvalidToken(KoanError, status=401):
    pass


class InvalidCredentials(KoanError, status=401):
    pass


class Forbidden(KoanError, status=403):
    pass


class EmailNotVerified(KoanError, status=403):
    pass


class CSRFFailed(KoanError, status=403):
    pass


class AccountDisabled(KoanError, status=403):
    pass


class NotFound(KoanError, status=404):
    pass


class Conflict(KoanError, status=409):
    pass


class PayloadTooLarge(KoanError, status=413):
    pass


class ValidationFailed(KoanError, status=422, code="ValidationError"):
    """422. `field`, when one field is at fault, is named in the answer's `fields` as request
    validation names it, so a client reads every 422 the same way."""

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        kind: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        keep_changes: bool | None = None,
    ) -> None:
        super().__init__(detail, code=code, headers=headers, keep_changes=keep_changes)
        self.fields = (
            [{"field": field, "message": detail, "type": kind}] if field is not None else []
        )


class RetryLater(KoanError):
    """An error that tells the client when to try again (the Retry-After header, seconds)."""

    default_retry_after = 5

    def __init__(
        self,
        detail: str,
        *,
        retry_after: int | None = None,
        code: str | None = None,
        keep_changes: bool | None = None,
    ) -> None:
        seconds = max(1, int(self.default_retry_after if retry_after is None else retry_after))
        super().__init__(
            detail, code=code, headers={"Retry-After": str(seconds)}, keep_changes=keep_changes
        )
        self.retry_after = seconds


class RateLimited(RetryLater, status=429):
    """429: the caller is going too fast, or has used up an allowance."""

    default_retry_after = 60


class TooManySubmissions(RateLimited):
    code = "TooManySubmissions"


class BudgetExceeded(RateLimited):
    code = "BudgetExceeded"


class ServiceUnavailable(RetryLater, status=503):
    """503: a dependency (database, cache, grader, LLM) is down or busy."""


class GraderBusy(ServiceUnavailable):
    code = "GraderBusy"


class TutorUnavailable(ServiceUnavailable):
    code = "TutorUnavailable"
