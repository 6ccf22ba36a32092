"""What Twilio's refusals teach is written set-based: refusing many numbers costs no more queries
than refusing a few."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.sending import errors
from core.sending.errors import ErrorKind, SendError
from invitations.models import Status, TextStatus
from invitations.texts import delivery
from patients.models import Patient
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db

INVALID = SendError(ErrorKind.REFUSED, "The phone number is not a valid number (Twilio error 21211, HTTP 400).", code=errors.INVALID_NUMBER)
LANDLINE = SendError(ErrorKind.REFUSED, "Not a mobile (Twilio error 21614, HTTP 400).", code=errors.NOT_MOBILE)


def _pending_texts(practice, count: int, start: int) -> list[int]:
    ids = []
    for n in range(count):
        number = f"+1617555{start + n:04d}"
        patient = PatientFactory(practice=practice, mobile_phone=number, texting=True)
        ids.append(InvitationFactory(
            patient=patient, email="", by_email=False, by_text=True, text_to=number, text_status=TextStatus.PENDING,
            status=Status.PENDING, sent_at=None,
        ).pk)
    return ids


def _queries_to_refuse(ids: list[int]) -> int:
    refused = [(pk, INVALID if i % 2 else LANDLINE) for i, pk in enumerate(ids)]
    with CaptureQueriesContext(connection) as queries:
        delivery.refuse(refused, now=NOW)
    return len(queries)


def test_refusing_many_numbers_costs_the_same_queries_as_a_few():
    practice = PracticeFactory(text_invitations_enabled=True)
    few, many = _pending_texts(practice, 4, 100), _pending_texts(practice, 20, 200)
    assert _queries_to_refuse(many) == _queries_to_refuse(few)
    marked = Patient.objects.filter(practice=practice).exclude(undeliverable_mobile="")
    assert marked.count() == 24
    assert all(p.undeliverable_mobile == p.mobile_phone for p in marked)
    assert {p.undeliverable_mobile_reason for p in marked} == {INVALID.detail, LANDLINE.detail}
