"""Sending mail: to an SMTP server when one is configured, else to the development outbox.

Requests never send inline: they queue their mail (`MailQueue`), which is delivered after the
response, so how long a request takes does not tell who was mailed (e.g. whether an address
has an account)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koan.config import Settings
from koan.models import OutboxMail
from koan.models.mail import SUBJECT_CHARS

log = structlog.get_logger(__name__)

# Opens a session that commits when its block ends cleanly (a unit of work of its own).
SessionOpener = Callable[[], AbstractAsyncContextManager[AsyncSession]]
# Work done after the response, in its own unit of work, that decides what to mail.
MailJob = Callable[[AsyncSession], Awaitable[list["Mail"]]]
# Records whether a queued mail was delivered (True) or failed every attempt (False), in a
# unit of work of its own once its delivery has been tried.
MailOutcome = Callable[[AsyncSession, bool], Awaitable[None]]


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


class Mailer:
    """Delivers Koan's mails; SMTP failures are retried, then logged, never raised."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def uses_outbox(self) -> bool:
        return not self.settings.smtp_host

    async def send(self, session: AsyncSession, *, to: str, subject: str, body: str) -> None:
        """Deliver now, within the caller's unit of work (the outbox row joins its session).
        Only for mail whose timing reveals nothing; requests that answer the same whoever is
        mailed queue theirs on a MailQueue instead."""

        @asynccontextmanager
        async def callers_session() -> AsyncIterator[AsyncSession]:
            yield session
            await session.flush()

        await self.deliver(Mail(to=to, subject=subject, body=body), callers_session)

    async def deliver(self, mail: Mail, open_session: SessionOpener) -> bool:
        """Deliver one mail; False when every attempt failed (logged as mail.failed)."""
        if self.uses_outbox:
            async with open_session() as session:
                # A subject naming a long class and teacher may pass the column's length.
                subject = mail.subject[:SUBJECT_CHARS]
                session.add(OutboxMail(to_address=mail.to, subject=subject, body=mail.body))
            # The outbox is for development: printing the mail is the point of it.
            log.info("mail.outbox", to=mail.to, subject=mail.subject, body=mail.body)
            return True
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        s = self.settings
        for attempt in range(1, s.mail_attempts + 1):
            try:
                await aiosmtplib.send(
                    message,
                    hostname=s.smtp_host,
                    port=s.smtp_port,
                    username=s.smtp_username or None,
                    password=s.smtp_password.get_secret_value() or None,
                    start_tls=s.smtp_starttls,
                    timeout=s.smtp_timeout_s,
                )
                return True
            except (aiosmtplib.SMTPException, OSError) as exc:
                if attempt == s.mail_attempts:
                    log.error(
                        "mail.failed",
                        subject=mail.subject,
                        attempts=attempt,
                        error=type(exc).__name__,
                    )
                    return False
                log.warning("mail.retry", subject=mail.subject, attempt=attempt)
                await asyncio.sleep(s.mail_retry_backoff_s * 2 ** (attempt - 1))
        return False


class MailQueue:
    """The mail one request decided to send, delivered after its response.

    `send` queues a finished mail; `compose` queues work that decides what to mail (e.g. look
    an address up and issue a token), run in a unit of work of its own after the response, so
    the request does the same whatever that work finds."""

    def __init__(self, mailer: Mailer, open_session: SessionOpener) -> None:
        self.mailer = mailer
        self.open_session = open_session
        self.mails: list[Mail] = []
        self.jobs: list[MailJob] = []
        self.outcomes: dict[int, MailOutcome] = {}  # id(mail) -> where its fate is recorded

    def send(self, mail: Mail, *, outcome: MailOutcome | None = None) -> None:
        """Queue a mail; `outcome` records whether it was delivered, once that is known."""
        self.mails.append(mail)
        if outcome is not None:
            self.outcomes[id(mail)] = outcome

    def compose(self, job: MailJob) -> None:
        self.jobs.append(job)

    async def deliver(self) -> None:
        """Run the queued work and deliver every mail (a failure is logged, never raised)."""
        mails, jobs, outcomes = list(self.mails), list(self.jobs), dict(self.outcomes)
        self.mails.clear()
        self.jobs.clear()
        self.outcomes.clear()
        for job in jobs:
            try:
                async with self.open_session() as session:
                    mails.extend(await job(session))
            except Exception:
                log.exception("mail.compose_failed")
        for mail in mails:
            try:
                delivered = await self.mailer.deliver(mail, self.open_session)
            except Exception:
                log.exception("mail.failed", subject=mail.subject)
                delivered = False
            outcome = outcomes.get(id(mail))
            if outcome is None:
                continue
            try:
                async with self.open_session() as session:
                    await outcome(session, delivered)
            except Exception:
                log.exception("mail.outcome_failed", subject=mail.subject)
