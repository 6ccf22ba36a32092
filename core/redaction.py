"""Secrets and health information never reach a log line.

Registration links (``/invite/<token>/`` and a text's ``/t/<token>/``) and password-reset links (``.../reset/<uid>/<token>/``)
work for whoever holds them, and a patient search by date of birth (``?q=1980-05-17``) puts health
information in a URL. Django's request logger ("Bad Request: /invite/..."), the development
server's and gunicorn's access logs all write the path: `RedactSecrets` is on every handler
(settings.LOGGING, portal_project/gunicorn.conf.py) and rewrites each record's message before it
is written. Plain `logging` only: gunicorn loads it before Django.
"""

import logging
import re

_PATTERNS = (
    (re.compile(r"(/invite/)[^/\s?\"']+"), r"\1[redacted]"),
    (re.compile(r"(/t/)[^/\s?\"']+"), r"\1[redacted]"),
    (re.compile(r"(/reset/)[^/\s?\"']+/[^/\s?\"']+"), r"\1[redacted]/[redacted]"),
    # Searches and filters that can hold a name or a date of birth.
    (re.compile(r"([?&](?:q|date_of_birth|dob|last_name|first_name|email)=)[^&\s\"']*", re.IGNORECASE), r"\1[redacted]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a badly formatted record is still logged
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class QuietRefusals(logging.Filter):
    """A refused request (403 PermissionDenied) is expected, not a fault: its line is kept, its
    traceback dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if getattr(record, "status_code", None) == 403 and type(exc).__name__ == "PermissionDenied":
            record.exc_info = None
            record.exc_text = None
        return True
