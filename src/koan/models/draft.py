"""What a learner is writing for an exercise, kept between runs, reloads and devices."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from koan.db import Base, utcnow


class Draft(Base):
    """One per learner and exercise: the editor's content as last saved."""

    __tablename__ = "drafts"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    exercise_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("exercises.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    code: Mapped[str] = mapped_column(Text)
    # When the server stored it: compared with runs, shown to the learner.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When it was written by the clock of the device that sent it, and that device (an id the
    # browser keeps; "" for a client that gave a time but no device). A device's saves are
    # ordered by its own clock; saves of different clocks by their arrival.
    written_at: Mapped[datetime | None] = mapped_column(default=None)
    device: Mapped[str | None] = mapped_column(String(64), default=None)
