"""What a class says about the tutor for one learner's exercise, as the chat sees it: classes
sits above chat, so the app wires the lookup in (`app.state.tutor_policy`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import User
from koan.tutor_gateway.budgets import Limit


class ClassPolicy(Protocol):
    """A class's controls over the tutor for one exercise (classes sits above chat; the app
    wires the lookup in, see `chat.deps`)."""

    @property
    def strictness(self) -> str | None: ...
    @property
    def off(self) -> bool: ...
    @property
    def off_reason(self) -> str: ...
    def system_prompt(self) -> str:
        """The teacher's instructions and words to avoid, for the system prompt."""
        ...

    @property
    def budgets(self) -> Sequence[Limit]:
        """The class's daily budgets (per learner, whole class) its conversations count
        against, within the server's."""
        ...


class PolicyLookup(Protocol):
    """The classes' tutor controls for a learner's exercise; the app wires it in (app.py)."""

    async def __call__(
        self, session: AsyncSession, user: User, exercise_id: uuid.UUID | None, *, now: datetime
    ) -> ClassPolicy | None: ...
