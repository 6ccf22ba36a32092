import datetime
import hashlib
import hmac
import json

import factory

from notifications.models import (
    ApplicationStatus,
    PaymentPlanApplication,
    PracticeLenderSettings,
)
from tests.clock import UTC
from tests.factories import PatientFactory, PracticeFactory


class ApplicationFactory(factory.django.DjangoModelFactory):
    """A payment-plan application as the lender's first event leaves it."""

    class Meta:
        model = PaymentPlanApplication
        skip_postgeneration_save = True

    practice = factory.SubFactory(PracticeFactory)
    patient = factory.SubFactory(PatientFactory, practice=factory.SelfAttribute("..practice"))
    lender_application_id = factory.Sequence(lambda n: f"APP-{n:05d}")
    status = ApplicationStatus.STARTED
    started_at = datetime.datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    @factory.post_generation
    def due_times(obj, create, extracted, **kwargs):
        obj.refresh_due_times()
        if create:
            obj.save()


class LenderSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PracticeLenderSettings
        django_get_or_create = ("practice",)

    practice = factory.SubFactory(PracticeFactory)
    webhook_secret = "s3cret-for-tests-0123456789abcdef"


def lender_signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def post_event(client, payload, *, secret, timestamp=None, body=None, signature=None, headers=None):
    """POST an event signed the way the lender signs it (overrides make it wrong on purpose)."""
    body = body if body is not None else json.dumps(payload).encode()
    if timestamp is None:
        timestamp = int(datetime.datetime.now(UTC).timestamp())
    sent_headers = {
        "X-Lender-Timestamp": str(timestamp),
        "X-Lender-Signature": signature if signature is not None else lender_signature(secret, timestamp, body),
    }
    sent_headers.update(headers or {})
    return client.post(
        "/api/payment-plans/events/", data=body, content_type="application/json", headers=sent_headers
    )
