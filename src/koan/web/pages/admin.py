"""The administrators' page: accounts (searched, a page at a time, disabled and enabled), LLM
usage, the exercise bank (searched, a page at a time, validated one by one or as one job) and
the sandbox."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response

from koan.deps import ResourcesDep
from koan.exercises import admin as bank
from koan.pagination import MAX_CURSOR_CHARS
from koan.usage import reports as usage_reports
from koan.users import admin as accounts
from koan.web.pagekit import (
    PageAdmin,
    Redirect,
    WebRoute,
    WebSession,
    form_data,
    local_url,
    parse_uuid,
    redirect,
    render,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 50
STATUSES = {"": None, "active": False, "disabled": True}
Search = Annotated[str, Query(max_length=200)]
Cursor = Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)]


def _address(params: dict[str, str], **changes: str | None) -> str:
    """/admin with these search parameters, changed (None: left out)."""
    merged = {**params, **changes}
    query = urlencode({k: v for k, v in merged.items() if v})
    return "/admin" + (f"?{query}" if query else "")


@router.get("/admin")
async def admin_page(
    request: Request,
    user: PageAdmin,
    session: WebSession,
    res: ResourcesDep,
    q: Search = "",
    status: Annotated[str, Query(max_length=20)] = "",
    cursor: Cursor = None,
    eq: Search = "",
    ecursor: Cursor = None,
) -> Response:
    """Accounts and the exercise bank (each searched, a page at a time), LLM usage and cost per
    day, the whole bank's validation, the sandbox tier."""
    notices = []
    if status not in STATUSES:
        notices.append("Accounts are either active or disabled: showing both.")
        status = ""
    people = await accounts.list_accounts(
        session, text=q, disabled=STATUSES[status], limit=PAGE_SIZE, cursor=cursor
    )
    exercises = await bank.bank_page(session, res, text=eq, limit=PAGE_SIZE, cursor=ecursor)
    search = {"q": q.strip(), "status": status, "eq": eq.strip()}
    here = _address(search, cursor=cursor, ecursor=ecursor)
    accounts_more = people.next_cursor and _address(
        search, cursor=people.next_cursor, ecursor=ecursor
    )
    bank_more = exercises.next_cursor and _address(
        search, cursor=cursor, ecursor=exercises.next_cursor
    )
    tier = res.sandbox.tier
    return render(
        request,
        "admin.html",
        {
            "notices": notices,
            "search": search,
            "here": here,
            "accounts": people,
            "page_size": PAGE_SIZE,
            "accounts_more": accounts_more,
            "accounts_first": cursor and _address(search, ecursor=ecursor),
            "bank": exercises,
            "bank_more": bank_more,
            "bank_first": ecursor and _address(search, cursor=cursor),
            "job": await bank.bank_validation(res),
            "sandbox_tier": tier.name.lower() if tier else "unavailable",
            "sandbox_slots": res.sandbox.config.slots,
            "usage": await usage_reports.everyones_days(session, res),
        },
    )


async def _back(request: Request) -> str:
    """Where a form on the admin page returns: the page as it was (search and page kept)."""
    back = local_url((await form_data(request)).get("back"), "/admin")
    return back if back.startswith("/admin") else "/admin"


@router.get("/admin/users/{user_id}/disable")
@router.get("/admin/users/{user_id}/enable")
@router.get("/admin/exercises/{exercise_id}/validate")
async def admin_form_address(request: Request, user: PageAdmin) -> Response:
    """An admin form's address opened directly (a reload, Back): the admin page."""
    return redirect(request, "/admin")


@router.post("/admin/users/{user_id}/disable")
async def disable_account(
    request: Request, user_id: str, user: PageAdmin, session: WebSession, res: ResourcesDep
) -> Response:
    """Disable an account: its sessions end at once and it cannot log in."""
    await accounts.set_disabled(session, res, parse_uuid(user_id), True, by=user)
    return redirect(request, await _back(request))


@router.post("/admin/users/{user_id}/enable")
async def enable_account(
    request: Request, user_id: str, user: PageAdmin, session: WebSession, res: ResourcesDep
) -> Response:
    """Let a disabled account log in again."""
    await accounts.set_disabled(session, res, parse_uuid(user_id), False, by=user)
    return redirect(request, await _back(request))


@router.post("/admin/exercises/{exercise_id}/validate")
async def validate(
    request: Request, exercise_id: str, user: PageAdmin, session: WebSession, res: ResourcesDep
) -> Response:
    """Run the reference solution and the starter code in the sandbox now."""
    exercise, verdict = await bank.validate_exercise(session, res, parse_uuid(exercise_id))
    return render(
        request, "partials/validation.html", {"exercise": exercise, "validation": verdict}
    )


@router.post("/admin/validation")
async def validate_bank(
    request: Request,
    user: PageAdmin,
    session: WebSession,
    res: ResourcesDep,
    tasks: BackgroundTasks,
) -> Response:
    """Validate every exercise as one job, after the response; the page follows its progress."""
    await bank.start_bank_validation(session, res, tasks, started_by=user.email)
    if request.headers.get("HX-Request"):
        return render(
            request, "partials/bank_validation.html", {"job": await bank.bank_validation(res)}
        )
    return redirect(request, "/admin#bank-validation")


@router.get("/admin/validation")
async def bank_validation_status(request: Request, user: PageAdmin, res: ResourcesDep) -> Response:
    """The whole-bank validation's progress (the fragment the page polls while it runs)."""
    if not request.headers.get("HX-Request"):
        raise Redirect("/admin#bank-validation")
    return render(
        request, "partials/bank_validation.html", {"job": await bank.bank_validation(res)}
    )
