"""Email backends for fault injection (used by worker processes started in tests)."""

from anymail.exceptions import AnymailAPIError
from django.core.mail.backends.base import BaseEmailBackend


class UnavailableBackend(BaseEmailBackend):
    """An email service that answers 503 Service Unavailable to every message."""

    def send_messages(self, email_messages):
        raise AnymailAPIError("Service Unavailable: try again later", status_code=503)
