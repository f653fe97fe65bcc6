"""Onboarding interview routes (verified email required)."""

from __future__ import annotations

from koan.auth.deps import VerifiedUser
from koan.common.routing import PrefixedRouter
from koan.deps import ResourcesDep, SessionDep
from koan.onboarding import service
from koan.onboarding.questions import QUESTIONS
from koan.onboarding.schemas import AnswersInput, OnboardingStatus, QuestionOut, QuestionsOut

router = PrefixedRouter(prefix="/onboarding", tags=["onboarding"])


@router.get("/questions", response_model=QuestionsOut)
async def questions(user: VerifiedUser) -> QuestionsOut:
    """The interview's questions, in order, with their options and limits."""
    return QuestionsOut(
        questions=[
            QuestionOut(
                id=q.id,
                prompt=q.prompt,
                kind=q.kind,
                required=q.required,
                options=list(q.options),
                help=q.help,
                limits=q.limits,
            )
            for q in QUESTIONS
        ]
    )


@router.put("/answers", response_model=OnboardingStatus)
async def save_answers(
    data: AnswersInput, user: VerifiedUser, session: SessionDep
) -> OnboardingStatus:
    """Save some or all answers; earlier answers are kept, so the interview can be resumed."""
    return await service.save_answers(session, user, data)


@router.post("/complete", response_model=OnboardingStatus)
async def complete(user: VerifiedUser, session: SessionDep, res: ResourcesDep) -> OnboardingStatus:
    """Finish the interview: every required answer must be present."""
    return await service.complete(session, res, user)


@router.get("/status", response_model=OnboardingStatus)
async def status(user: VerifiedUser, session: SessionDep) -> OnboardingStatus:
    """What has been answered and what is still missing."""
    return service.status_of(await service.profile_of(session, user), user)
