"""One error hierarchy for Koan; every error renders as {"error": "<Code>", "detail": "..."}."""

from __future__ import annotations


class KoanError(Exception):
    """Base of every error Koan reports to a client."""

    status_code: int = 400
    code: str = "BadRequest"
    # When true, the request's database work is committed even though this error is returned.
    keep_changes: bool = False

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


class BadRequest(KoanError):
    status_code = 400
    code = "BadRequest"


class NotAuthenticated(KoanError):
    status_code = 401
    code = "NotAuthenticated"


class InvalidToken(KoanError):
    status_code = 401
    code = "InvalidToken"


class InvalidCredentials(KoanError):
    status_code = 401
    code = "InvalidCredentials"


class Forbidden(KoanError):
    status_code = 403
    code = "Forbidden"


class EmailNotVerified(KoanError):
    status_code = 403
    code = "EmailNotVerified"


class CSRFFailed(KoanError):
    status_code = 403
    code = "CSRFFailed"


class NotFound(KoanError):
    status_code = 404
    code = "NotFound"


class Conflict(KoanError):
    status_code = 409
    code = "Conflict"


class PayloadTooLarge(KoanError):
    status_code = 413
    code = "PayloadTooLarge"


class ValidationFailed(KoanError):
    status_code = 422
    code = "ValidationError"


class RateLimited(KoanError):
    """429 with Retry-After (seconds)."""

    status_code = 429
    code = "RateLimited"

    def __init__(
        self,
        detail: str,
        *,
        retry_after: int,
        code: str | None = None,
        keep_changes: bool | None = None,
    ) -> None:
        super().__init__(
            detail,
            code=code,
            headers={"Retry-After": str(max(1, int(retry_after)))},
            keep_changes=keep_changes,
        )
        self.retry_after = max(1, int(retry_after))


class TooManySubmissions(RateLimited):
    code = "TooManySubmissions"


class BudgetExceeded(RateLimited):
    code = "BudgetExceeded"


class ServiceUnavailable(KoanError):
    """503 with Retry-After: a dependency (database, cache, grader, LLM) is down or busy."""

    status_code = 503
    code = "ServiceUnavailable"

    def __init__(
        self,
        detail: str,
        *,
        retry_after: int = 5,
        code: str | None = None,
        keep_changes: bool | None = None,
    ) -> None:
        super().__init__(
            detail,
            code=code,
            headers={"Retry-After": str(max(1, int(retry_after)))},
            keep_changes=keep_changes,
        )
        self.retry_after = max(1, int(retry_after))


class GraderBusy(ServiceUnavailable):
    code = "GraderBusy"


class TutorUnavailable(ServiceUnavailable):
    code = "TutorUnavailable"
