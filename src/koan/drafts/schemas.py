"""Bodies of the draft routes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import Field, StrictInt, field_validator

from koan.common.schemas import LATEST_YEAR, Input, Schema
from koan.exercises.schemas import MAX_CODE_BYTES

# The same bound as a submission, refused the same way (413, koan.drafts.service.save): a
# draft is what will be submitted.
MAX_DRAFT_BYTES = MAX_CODE_BYTES
# The last millisecond a draft's time may name (the end of the latest year dates may take).
LATEST_MS = int(datetime(LATEST_YEAR + 1, 1, 1, tzinfo=UTC).timestamp() * 1000) - 1


class DraftIn(Input):
    code: str
    # When the browser read the editor (milliseconds since the epoch): saves that arrive out of
    # order (a page's exit save behind a newer one) must not put older code back.
    written_at_ms: StrictInt | None = Field(default=None, ge=0, le=LATEST_MS)
    # Which device's clock `written_at_ms` is by (the browser keeps a random id): saves of one
    # device are ordered by its clock, saves of different devices by their arrival.
    device: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # The saved draft the editor's text grew from (its `updated_at` in milliseconds; 0: none
    # was saved): a save over another one made since (another tab, another device) is refused
    # with 409 DraftConflict instead of putting older work over newer. Without it: saved.
    base_ms: StrictInt | None = Field(default=None, ge=0, le=LATEST_MS)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL bytes")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("must be valid Unicode text") from exc
        return value


class DraftOut(Schema):
    exercise_id: uuid.UUID
    code: str
    updated_at: datetime
