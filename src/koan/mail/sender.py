"""Sending mail: to an SMTP server when one is configured, else to the development outbox."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koan.config import Settings
from koan.models import OutboxMail

log = structlog.get_logger(__name__)


class Mailer:
    """Delivers Koan's mails; a failed SMTP delivery is logged, never fails the request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def uses_outbox(self) -> bool:
        return not self.settings.smtp_host

    async def send(self, session: AsyncSession, *, to: str, subject: str, body: str) -> None:
        if self.uses_outbox:
            session.add(OutboxMail(to_address=to, subject=subject, body=body))
            await session.flush()
            # The outbox is for development: printing the mail is the point of it.
            log.info("mail.outbox", to=to, subject=subject, body=body)
            return
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        s = self.settings
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
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("mail.failed", subject=subject, error=type(exc).__name__)
