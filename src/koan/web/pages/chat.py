"""The tutor chat page: past conversations and a streaming conversation with the tutor."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from koan.chat import service as chat
from koan.classes.tutor import tutor_policy_for
from koan.deps import ResourcesDep
from koan.web.pagekit import PageUser, WebRoute, WebSession, parse_uuid, render

router = APIRouter(route_class=WebRoute, include_in_schema=False)

CONVERSATIONS_SHOWN = 50
MESSAGES_SHOWN = 200


@router.get("/chat")
async def chat_page(
    request: Request,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    c: str | None = None,
) -> Response:
    """Talk to the tutor; the reply streams in token by token. `c` opens a past conversation
    (any value that is not one of the learner's conversations answers 404)."""
    page = await chat.conversations_page(session, user, limit=CONVERSATIONS_SHOWN, cursor=None)
    current = None
    tutor_off = None
    if c:
        conversation = await chat.owned(session, user, parse_uuid(c))
        current = await chat.detail(session, conversation, limit=MESSAGES_SHOWN, cursor=None)
    # A new conversation is about no exercise: a class in an exam window switches it off too.
    exercise_id = current.exercise_id if current is not None else None
    policy = await tutor_policy_for(session, user, exercise_id, now=res.clock.now())
    if policy is not None and policy.off:
        tutor_off = policy.off_reason or "Your class has switched the tutor off for now."
    return render(
        request,
        "chat.html",
        {"conversations": list(page.items), "current": current, "tutor_off": tutor_off},
    )
