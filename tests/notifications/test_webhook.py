"""POST /api/payment-plans/events/: signature, timestamp, payload errors, idempotency."""

import datetime
import json

import pytest
import time_machine
from django.core import mail

from notifications.models import (
    ApplicationStatus,
    LenderEvent,
    NotificationDelivery,
    PaymentPlanApplication,
)
from tests.clock import NOW, UTC

from .factories import LenderSettingsFactory, post_event

TS = int(NOW.timestamp())

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("team", "frozen")]


@pytest.fixture
def payload(office, plan_patient, lender_settings):
    return {
        "event_id": "evt_0001",
        "application_id": "LND-42",
        "practice": office.pk,
        "patient": plan_patient.chart_number,
        "type": "started",
        "occurred_at": "2026-03-02T14:55:00Z",
    }


@pytest.fixture
def post_lender_event(client, lender_settings):
    def send(payload, **kwargs):
        kwargs.setdefault("secret", lender_settings.webhook_secret)
        kwargs.setdefault("timestamp", TS)
        return post_event(client, payload, **kwargs)

    return send


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    assert body["detail"]
    return body["detail"]


def nothing_stored():
    return not LenderEvent.objects.exists() and not PaymentPlanApplication.objects.exists()


def test_it_applies_a_signed_event(post_lender_event, payload, plan_patient):
    response = post_lender_event(payload)
    assert response.status_code == 200
    assert response.json() == {"result": "applied", "event_id": "evt_0001", "application_id": "LND-42", "status": "started"}
    application = PaymentPlanApplication.objects.get()
    assert (application.patient, application.started_at) == (plan_patient, datetime.datetime(2026, 3, 2, 14, 55, tzinfo=UTC))


def test_an_immediate_alert_is_sent_after_the_event(post_lender_event, payload, team):
    post_lender_event(payload)
    response = post_lender_event({**payload, "event_id": "evt_0002", "type": "declined", "occurred_at": "2026-03-02T09:58:00-05:00"})
    assert response.json()["status"] == "declined"
    assert sorted(m.to[0] for m in mail.outbox) == sorted(u.email for u in team)
    assert PaymentPlanApplication.objects.get().declined_at == datetime.datetime(2026, 3, 2, 14, 58, tzinfo=UTC)


def test_the_same_event_twice_is_accepted_once(post_lender_event, payload, team):
    payload = {**payload, "type": "activated"}
    first = post_lender_event(payload)
    second = post_lender_event(payload)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["result"], second.json()["result"]) == ("applied", "duplicate")
    assert LenderEvent.objects.count() == 1
    assert NotificationDelivery.objects.count() == len(team)
    assert len(mail.outbox) == len(team)


def test_an_out_of_order_event_is_recorded_without_moving_back(post_lender_event, payload):
    post_lender_event({**payload, "event_id": "e2", "type": "approved", "occurred_at": "2026-03-02T14:50:00Z"})
    response = post_lender_event({**payload, "event_id": "e1", "type": "pre_qualified", "occurred_at": "2026-03-02T14:40:00Z"})
    assert response.status_code == 200
    assert response.json()["result"] == "recorded"
    assert response.json()["status"] == ApplicationStatus.APPROVED
    application = PaymentPlanApplication.objects.get()
    assert application.status == ApplicationStatus.APPROVED
    assert application.pre_qualified_at == datetime.datetime(2026, 3, 2, 14, 40, tzinfo=UTC)
    assert mail.outbox == []


# -- signature and timestamp ------------------------------------------------------------------


def test_a_wrong_signature_is_rejected(post_lender_event, payload):
    detail = assert_error(post_lender_event(payload, signature="0" * 64), 401, "bad_signature")
    assert "HMAC-SHA256" in detail
    assert nothing_stored()


def test_a_signature_with_another_practices_secret_is_rejected(post_lender_event, payload, other_office):
    other = LenderSettingsFactory(practice=other_office, webhook_secret="the-other-office-secret-000000000")
    assert_error(post_lender_event(payload, secret=other.webhook_secret), 401, "bad_signature")
    assert nothing_stored()


def test_a_tampered_body_is_rejected(post_lender_event, payload, lender_settings):
    from .factories import lender_signature

    signed_body = json.dumps(payload).encode()
    tampered = json.dumps({**payload, "type": "activated"}).encode()
    response = post_lender_event(payload, body=tampered, signature=lender_signature(lender_settings.webhook_secret, TS, signed_body))
    assert_error(response, 401, "bad_signature")
    assert nothing_stored()


def test_missing_signature_headers_are_rejected(client, payload):
    response = client.post("/api/payment-plans/events/", data=payload, content_type="application/json")
    assert_error(response, 401, "missing_signature")


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_more_than_5_minutes_off_is_rejected(post_lender_event, payload, offset):
    detail = assert_error(post_lender_event(payload, timestamp=TS + offset), 401, "stale_timestamp")
    assert "5 minutes" in detail
    assert nothing_stored()


@pytest.mark.parametrize("offset", [-300, 300])
def test_a_timestamp_within_5_minutes_is_accepted(post_lender_event, payload, offset):
    assert post_lender_event(payload, timestamp=TS + offset).status_code == 200


def test_a_non_numeric_timestamp_is_rejected(post_lender_event, payload, lender_settings):
    from .factories import lender_signature

    body = json.dumps(payload).encode()
    response = post_lender_event(payload, body=body, timestamp="yesterday", signature=lender_signature(lender_settings.webhook_secret, "yesterday", body))
    assert_error(response, 401, "stale_timestamp")


def test_the_previous_secret_works_for_24_hours_after_rotation(post_lender_event, payload, lender_settings):
    old = lender_settings.webhook_secret
    lender_settings.rotate_secret(now=NOW)
    assert post_lender_event(payload, secret=old).status_code == 200
    assert post_lender_event({**payload, "event_id": "e-new"}, secret=lender_settings.webhook_secret).status_code == 200
    later = NOW + datetime.timedelta(hours=24, seconds=1)
    with time_machine.travel(later, tick=False):
        response = post_lender_event({**payload, "event_id": "e-late"}, secret=old, timestamp=int(later.timestamp()))
    assert_error(response, 401, "bad_signature")


# -- payload errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1, 2]", b'"started"', b""])
def test_malformed_json_is_rejected(post_lender_event, body):
    assert_error(post_lender_event({}, body=body), 400, "malformed_json")


@pytest.mark.parametrize("field", ["event_id", "application_id", "patient", "type", "occurred_at"])
def test_a_missing_field_is_named(post_lender_event, payload, field):
    del payload[field]
    detail = assert_error(post_lender_event(payload), 400, "missing_field")
    assert field in detail
    assert nothing_stored()


def test_a_missing_practice_is_named(post_lender_event, payload):
    del payload["practice"]
    assert "practice" in assert_error(post_lender_event(payload), 400, "missing_field")


def test_an_unknown_practice_is_rejected(post_lender_event, payload):
    payload["practice"] = 999999
    assert "999999" in assert_error(post_lender_event(payload), 404, "unknown_practice")


def test_a_practice_without_a_webhook_secret_is_rejected(post_lender_event, payload, other_office):
    payload["practice"] = other_office.pk
    assert_error(post_lender_event(payload), 404, "unknown_practice")


@pytest.mark.parametrize("value", ["Maple Dental", "²", "١٢", 10**30, -1, 1.5, ""])
def test_a_non_numeric_or_out_of_range_practice_is_rejected(post_lender_event, payload, value):
    payload["practice"] = value
    assert_error(post_lender_event(payload), 400, "invalid_field")


def test_an_unknown_patient_is_rejected(post_lender_event, payload):
    payload["patient"] = "NO-SUCH-CHART"
    assert "NO-SUCH-CHART" in assert_error(post_lender_event(payload), 422, "unknown_patient")
    assert nothing_stored()


def test_another_practices_patient_is_unknown(post_lender_event, payload, other_office):
    from tests.factories import PatientFactory

    payload["patient"] = PatientFactory(practice=other_office, chart_number="B-77").chart_number
    assert_error(post_lender_event(payload), 422, "unknown_patient")


def test_an_unknown_event_type_is_rejected(post_lender_event, payload):
    payload["type"] = "funded"
    detail = assert_error(post_lender_event(payload), 400, "unknown_event_type")
    assert "funded" in detail and "pre_qualified" in detail


@pytest.mark.parametrize("value", ["yesterday", "2026-13-45T10:00:00Z", "2026-03-02T14:55:00", 1772463300, "2026-03-03T15:00:00Z"])
def test_a_bad_occurred_at_is_rejected(post_lender_event, payload, value):
    payload["occurred_at"] = value
    assert "occurred_at" in assert_error(post_lender_event(payload), 400, "invalid_field")


def test_an_overlong_id_is_rejected(post_lender_event, payload):
    payload["event_id"] = "x" * 101
    assert_error(post_lender_event(payload), 400, "invalid_field")


def test_an_application_of_another_patient_is_a_conflict(post_lender_event, payload, office):
    from tests.factories import PatientFactory

    post_lender_event(payload)
    other = PatientFactory(practice=office, chart_number="CH-2")
    response = post_lender_event({**payload, "event_id": "e2", "patient": other.chart_number, "type": "approved"})
    assert_error(response, 409, "patient_mismatch")
    assert PaymentPlanApplication.objects.get().status == ApplicationStatus.STARTED
    assert LenderEvent.objects.count() == 1


def test_get_is_not_allowed(client):
    response = client.get("/api/payment-plans/events/")
    assert_error(response, 405, "method_not_allowed")


def test_no_csrf_token_is_needed(payload, lender_settings):
    from django.test import Client

    response = post_event(Client(enforce_csrf_checks=True), payload, secret=lender_settings.webhook_secret, timestamp=TS)
    assert response.status_code == 200


def test_a_body_over_the_upload_limit_is_rejected(post_lender_event, payload, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50
    assert_error(post_lender_event({**payload, "event_id": "x" * 80}), 413, "payload_too_large")
    assert nothing_stored()


def test_a_database_outage_asks_the_lender_to_retry(post_lender_event, payload):
    from unittest import mock

    from django.db import OperationalError

    with mock.patch("notifications.services.apply_event", side_effect=OperationalError("server closed the connection")):
        detail = assert_error(post_lender_event(payload), 503, "temporarily_unavailable")
    assert "send it again" in detail
    assert "server closed" not in detail



def test_a_broker_outage_does_not_fail_the_webhook(post_lender_event, payload, monkeypatch):
    """The event is applied and answered 200; its alerts stay pending for the requeue sweep."""
    from kombu.exceptions import OperationalError

    from notifications.tasks import send_delivery

    def refuse(*args, **kwargs):
        raise OperationalError("Connection refused")

    monkeypatch.setattr(send_delivery, "apply_async", refuse)
    response = post_lender_event({**payload, "type": "declined"})
    assert response.status_code == 200, response.content
    assert PaymentPlanApplication.objects.get().status == ApplicationStatus.DECLINED
    assert NotificationDelivery.objects.filter(status="pending").exists()
    assert mail.outbox == []


# -- hostile bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in the parser before any check
        b'{"practice": 1, "x": ' + b"[" * 50 + b"]" * 50 + b"}",
        b'{"practice": 1, "event_id": NaN}',
        b'{"practice": 1, "event_id": ' + b"9" * 5000 + b"}",  # past Python's integer-string limit
    ],
)
def test_hostile_json_is_a_400_in_json_before_any_work(post_lender_event, payload, body):
    response = post_lender_event(payload, body=body)
    assert_error(response, 400, "malformed_json")
    assert nothing_stored()


def test_deep_brackets_inside_strings_are_only_text(post_lender_event, payload):
    response = post_lender_event({**payload, "event_id": "evt_[[[[[[[[[[[[[[[[[[[[[[[["})
    assert response.status_code == 200


@pytest.mark.parametrize("field", ["event_id", "application_id", "patient"])
@pytest.mark.parametrize("bad", ["evt\x00001", "evt\n1", "evt\x7f"])
def test_a_signed_event_with_control_characters_is_a_400_not_a_retryable_503(post_lender_event, payload, field, bad):
    """A NUL byte made PostgreSQL refuse the row (DataError), answered 503: the lender retried an
    event that could never succeed."""
    detail = assert_error(post_lender_event({**payload, field: bad}), 400, "invalid_field")
    assert field in detail and "control characters" in detail
    assert nothing_stored()


def test_a_database_data_error_on_a_signed_event_is_a_400(post_lender_event, payload, monkeypatch):
    from django.db import DataError

    from notifications import services

    def refuse(**kwargs):
        raise DataError("value too long for type character varying(100)")

    monkeypatch.setattr(services, "apply_event", refuse)
    assert_error(post_lender_event(payload), 400, "invalid_field")
