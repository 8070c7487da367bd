"""The example's jobs, imported by the app (to enqueue them) and by the worker:
``pgqueue work --app examples.fastapi_app.jobs``."""

from __future__ import annotations

import logging

from pgqueue import Job

log = logging.getLogger(__name__)


# name= keeps stored rows valid if this module moves (the default name is module.QualName).
class SendWelcomeEmail(Job, name="send_welcome_email", queue="emails", max_retries=5):
    """Welcome a new signup. A real app would call its mail provider here."""

    email: str

    async def handle(self) -> str:
        log.info("sending the welcome email to %s", self.email)
        return f"welcome email sent to {self.email}"
