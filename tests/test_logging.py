"""No registration or reset token, and no search term (a date of birth, a name), in any log line:
Django's request log, the development server's access log, and gunicorn's access log."""

import io
import logging
import urllib.error
import urllib.request

import pytest

from core.redaction import RedactSecrets, redact
from tests.workers import gunicorn, wait_until

TOKEN = "Zx9-secret-token_abcdefghijklmnopqrstuvwxyz012345"


@pytest.mark.parametrize(
    "line,kept",
    [
        (f"Bad Request: /invite/{TOKEN}/", "Bad Request: /invite/[redacted]/"),
        (f'"GET /invite/{TOKEN}/ HTTP/1.1" 200 1234', '"GET /invite/[redacted]/ HTTP/1.1" 200 1234'),
        (f'"GET /t/{TOKEN}/ HTTP/1.1" 200 1234', '"GET /t/[redacted]/ HTTP/1.1" 200 1234'),
        ("GET /portal/reset/MTI/c3x9ab-0123456789abcdef/ HTTP/1.1", "GET /portal/reset/[redacted]/[redacted]/ HTTP/1.1"),
        ("GET /admin/patients/patient/?q=1980-05-17&o=1 HTTP/1.1", "GET /admin/patients/patient/?q=[redacted]&o=1 HTTP/1.1"),
        ("GET /admin/patients/patient/?portal_status=failed&q=Rivera HTTP/1.1", "GET /admin/patients/patient/?portal_status=failed&q=[redacted] HTTP/1.1"),
        ("GET /admin/patients/patient/?portal_status=failed HTTP/1.1", "GET /admin/patients/patient/?portal_status=failed HTTP/1.1"),
    ],
)
def test_redaction(line, kept):
    assert redact(line) == kept


def configured_handler_output(logger_name: str, emit) -> str:
    """Run `emit` with the real LOGGING handlers of `logger_name` writing to a string."""
    logger = logging.getLogger(logger_name)
    # The project's handlers (pytest adds capturing handlers of its own to the root logger).
    handlers = [
        h for h in (logger.handlers or logging.getLogger().handlers)
        if any(isinstance(f, RedactSecrets) for f in h.filters)
    ]
    assert handlers, f"no redacting handler for {logger_name}"
    buffer = io.StringIO()
    previous = [h.setStream(buffer) for h in handlers]
    try:
        emit()
    finally:
        for handler, stream in zip(handlers, previous):
            handler.setStream(stream)
    return buffer.getvalue()


@pytest.mark.django_db
def test_a_wrong_answer_on_a_registration_link_logs_no_token(client):
    from tests.invitations.factories import invitation_with_token

    invitation, token = invitation_with_token()
    output = configured_handler_output(
        "django.request",
        lambda: client.post(f"/invite/{token}/", {"last_name": "x", "date_of_birth": "01/01/1990", "username": "abc",
                                                    "password1": "correct horse 42", "password2": "correct horse 42"}),
    )
    assert "/invite/[redacted]/" in output and token not in output


def test_the_development_servers_access_log_is_redacted():
    from django.core.servers.basehttp import WSGIRequestHandler  # noqa: F401  (the logger it uses)

    output = configured_handler_output(
        "django.server",
        lambda: logging.getLogger("django.server").info(
            '"%s" %s %s', f"GET /invite/{TOKEN}/?q=1980-05-17 HTTP/1.1", "200", "1234",
            extra={"status_code": 200, "request": None},
        ),
    )
    assert TOKEN not in output and "1980-05-17" not in output and "/invite/[redacted]/" in output


@pytest.mark.django_db(transaction=True)
def test_gunicorns_access_log_is_redacted(tmp_path):
    with gunicorn(tmp_path, workers=1) as (base, log_path):
        with pytest.raises(urllib.error.HTTPError) as unknown_link:
            urllib.request.urlopen(f"{base}/invite/{TOKEN}/?q=1980-05-17", timeout=10)
        assert unknown_link.value.code == 404  # the unknown link's 404 page: served
        # gunicorn writes the access line once the response is out; wait for it, not for a guess.
        output = wait_until(
            lambda: "GET /invite/" in log_path.read_text() and log_path.read_text(),
            timeout=10, interval=0.1, message="gunicorn's access log line",
        )
    assert "GET /invite/[redacted]/?q=[redacted]" in output, output[-2000:]
    assert TOKEN not in output and "1980-05-17" not in output
