"""Class pages: a teacher's (the class, its roster and invitations, assignments, gradebook, who
needs help, per-exercise figures, one learner's work, the tutor's controls and spend) and a
learner's (joining with the code or an invitation, the class's work, leaving).

Every page asks `classes.service.member_of` first: a class the viewer is not in answers 404, a
staff page asked for by a learner 403, as the API does."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from koan.web.pagekit import PageUser, WebRoute, parse_uuid, redirect
from koan.web.pages.classes import assignments, dashboard, joining, overview, settings, tutor
from koan.web.pages.classes.common import STATUS_TEXT, ClassId

__all__ = ["STATUS_TEXT", "router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)
# Joining first: /classes/join and /classes/invite before /classes/{class_id}.
for part in (joining, overview, dashboard, assignments, tutor, settings):
    router.include_router(part.router)


@router.get("/classes/{class_id}/invites")
@router.get("/classes/{class_id}/invites/csv")
@router.get("/classes/{class_id}/join-code")
@router.get("/classes/{class_id}/generated/{exercise_id}/approve")
@router.get("/classes/{class_id}/generated/{exercise_id}/reject")
@router.get("/classes/{class_id}/members/{user_id}/role")
async def form_address(request: Request, class_id: ClassId, user: PageUser) -> Response:
    """A form's address opened directly (a reload after a form shown again): its page."""
    return redirect(request, f"/classes/{parse_uuid(class_id)}")
