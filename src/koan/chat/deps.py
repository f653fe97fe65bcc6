"""The caller of a message route and their conversation, checked as one dependency."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from koan.auth.deps import access_claims, authenticated, current_auth, ensure_verified
from koan.chat import repository
from koan.chat.policy import PolicyLookup
from koan.chat.reply import HISTORY_LIMIT, ReplyTarget
from koan.chat.service import no_conversation
from koan.deps import ResourcesDep, SessionDep

_CONVERSATION_ID = TypeAdapter(uuid.UUID)


async def reply_target(request: Request, session: SessionDep, res: ResourcesDep) -> ReplyTarget:
    """`VerifiedUser` and the caller's conversation with its newest messages, in one query:
    401, 403, then 404 for anyone else's conversation, as the separate checks give them.

    The id is read from the path here, after the caller is known, so that a caller without a
    live session gets 401 whatever the id, as on every other route."""
    claims, via_cookie = access_claims(request, res)
    try:
        conversation_id = _CONVERSATION_ID.validate_python(request.path_params["conversation_id"])
    except ValidationError as exc:
        ensure_verified((await current_auth(request, session)).user)
        errors = [{**error, "loc": ("path", "conversation_id")} for error in exc.errors()]
        raise RequestValidationError(errors) from None
    found = await repository.caller_and_conversation(
        session, claims.session_id, claims.user_id, conversation_id, history_limit=HISTORY_LIMIT
    )
    auth = authenticated(None if found is None else found[:2], via_cookie=via_cookie)
    ensure_verified(auth.user)
    if found is None or found.conversation is None:
        raise no_conversation()
    policy = None
    lookup: PolicyLookup | None = getattr(request.app.state, "tutor_policy", None)
    if lookup is not None:
        policy = await lookup(
            session, auth.user, found.conversation.exercise_id, now=res.clock.now()
        )
    return ReplyTarget(auth.user, found.conversation, found.profile, found.history, policy, lookup)


ReplyTargetDep = Annotated[ReplyTarget, Depends(reply_target)]
