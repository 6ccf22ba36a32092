"""Shared pieces of the invitation-text tests (test_texts.py, test_text_*.py, tests/e2e/
test_text_invitation.py): a practice that texts, a patient with a mobile number and text consent,
texts through the real twilio client to the local stand-in (tests/twilio_standin/) or written as
files (SMS_PROVIDER=""), and helpers that invite and read back what the patient received.

A test module takes the fixtures by importing them:
``from tests.invitations.text_fixtures import _twilio_server, fresh_sms_rate, texting, ...  # noqa: F401``.
"""

import datetime
import re
from pathlib import Path

import pytest
from django.urls import reverse

from invitations import services
from invitations.models import Invitation, Source
from invitations.vocabulary import SendBy
from tests.clock import NOW
from tests.core.conftest import _twilio_server, fresh_sms_rate, twilio  # noqa: F401  (fixtures)
from tests.factories import PatientFactory, PracticeFactory
from tests.twilio_standin import sign

MOBILE = "+16175550123"
PRACTICE_PHONE = "(617) 555-0142"
#: The short link a text carries, and its token.
TEXT_LINK = re.compile(r"https?://\S+/t/(?P<token>[A-Za-z0-9_-]+)/")
DATE_OF_BIRTH = datetime.date(1984, 11, 3)


@pytest.fixture
def texting_practice():
    return PracticeFactory(name="Maple Street Dental", contact_phone=PRACTICE_PHONE, text_invitations_enabled=True)


@pytest.fixture
def patient(texting_practice):
    """Invitable by email and by text."""
    return PatientFactory(
        practice=texting_practice, first_name="Zoë", last_name="Quintanilla", date_of_birth=DATE_OF_BIRTH,
        email="zoe@example.com", mobile_phone=MOBILE, texting=True,
    )


@pytest.fixture
def texting(twilio, fresh_sms_rate):  # noqa: F811 - the fixtures imported above
    """Texts go through the real twilio client to the stand-in, which posts no status callbacks
    (nothing listens at PORTAL_BASE_URL in these tests; the webhook tests post them themselves)."""
    twilio.configure(callbacks=False)
    return twilio


@pytest.fixture
def text_files(settings, tmp_path) -> Path:
    """SMS_PROVIDER="": texts are written as files under VAR_DIR/texts/ (the embedded default)."""
    settings.SMS_PROVIDER = ""
    settings.PORTAL_SMS_RATE_LIMIT = 0
    settings.VAR_DIR = tmp_path
    return tmp_path / "texts"


@pytest.fixture
def invite_now(eager_celery, django_capture_on_commit_callbacks):
    """invite_now(patient, send_by): services.invite at NOW, committed, with its tasks run eagerly.
    Returns the outcome (its invitation re-read after the tasks)."""

    def invite(patient, send_by=SendBy.TEXT, *, now=NOW, **options):
        with django_capture_on_commit_callbacks(execute=True):
            outcome = services.invite(patient, now=now, source=options.pop("source", Source.MANUAL), send_by=send_by, **options)
        if outcome.invitation is not None:
            outcome.invitation.refresh_from_db()
        return outcome

    return invite


def token_in(body: str) -> str:
    match = TEXT_LINK.search(body)
    assert match, body
    return match["token"]


def text_path(token: str) -> str:
    return reverse("portal:register_text", args=[token])


def texted(standin, to: str = MOBILE) -> list[dict]:
    """The texts the stand-in accepted for `to`."""
    return [message for message in standin.accepted() if message["to"] == to]


def written_texts(folder: Path) -> list[tuple[dict, str]]:
    """The texts FileTransport wrote: (headers, body) each, oldest first."""
    found = []
    for path in sorted(folder.glob("*.txt")) if folder.exists() else []:
        head, _, body = path.read_text(encoding="utf-8").partition("\n\n")
        headers = dict(line.split(": ", 1) for line in head.splitlines())
        found.append((headers, body.rstrip("\n")))
    return found


def events(invitation: Invitation) -> list[tuple[str, str]]:
    """The invitation's timeline, oldest first: (kind, detail)."""
    return list(invitation.events.order_by("at", "pk").values_list("kind", "detail"))


def post_as_twilio(client, path: str, params: dict, *, base: str = "https://portal.example.test", signature=None, **extra):
    """POST `params` to `path` as Twilio would: signed for PORTAL_BASE_URL + path (the query string
    included); `signature` "" sends none, a string sends that one."""
    url = base + path
    headers = {} if signature == "" else {"HTTP_X_TWILIO_SIGNATURE": signature if signature is not None else sign(url, params)}
    return client.post(path, params, **headers, **extra)
