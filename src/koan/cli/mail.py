"""`koan mail`: the development outbox."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from koan.cli.common import console, database_errors
from koan.config import Settings

app = typer.Typer(help="The development outbox.", no_args_is_help=True)


@app.command("list")
def mail_list(
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    to: Annotated[str | None, typer.Option(help="Only mail to this address.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Print each mail's body.")] = False,
) -> None:
    """Show the mails stored in the development outbox (used when no SMTP host is set)."""
    with database_errors():
        asyncio.run(_mail_list(limit, to, full))


async def _mail_list(limit: int, to: str | None, full: bool) -> None:
    from koan.models import OutboxMail
    from koan.resources import Resources

    res = Resources.from_settings(Settings())
    try:
        async with res.session_factory() as session:
            query = select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)
            if to:
                query = query.where(OutboxMail.to_address == to.strip().lower())
            mails = (await session.execute(query)).scalars().all()
    finally:
        await res.close()
    if not mails:
        console.print("The outbox is empty.")
        return
    if full:
        for mail in mails:
            console.rule(f"#{mail.id} {mail.created_at:%Y-%m-%d %H:%M} to {mail.to_address}")
            # soft_wrap: links must survive intact for copy and paste.
            console.print(f"Subject: {mail.subject}\n\n{mail.body}", markup=False, soft_wrap=True)
        return
    table = Table("id", "sent (UTC)", "to", "subject")
    for mail in mails:
        table.add_row(
            str(mail.id), f"{mail.created_at:%Y-%m-%d %H:%M}", mail.to_address, mail.subject
        )
    console.print(table)
