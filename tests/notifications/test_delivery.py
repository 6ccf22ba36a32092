"""Sending one alert: the claim, retries on failure, the email's content."""

from unittest import mock

import pytest
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core import mail

from notifications import emails, services
from notifications.models import (
    AlertType,
    DeliveryMode,
    DeliveryStatus,
    NotificationDelivery,
)
from tests.clock import NOW

from .factories import ApplicationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


@pytest.fixture
def application(office, plan_patient):
    return ApplicationFactory(practice=office, patient=plan_patient, lender_application_id="LND-778812")


@pytest.fixture
def delivery(application, alice):
    return NotificationDelivery.objects.create(
        practice=application.practice, application=application, alert_type=AlertType.DECLINED, recipient=alice
    )


def test_it_sends_once_however_often_it_is_asked(delivery):
    assert services.deliver_alert(delivery.pk) == "sent"
    assert services.deliver_alert(delivery.pk) == "skipped"
    assert len(mail.outbox) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.sent_at) == (DeliveryStatus.SENT, 1, NOW)


def test_a_row_claimed_by_another_worker_is_left_alone(delivery):
    NotificationDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SENDING, claimed_at=NOW)
    assert services.deliver_alert(delivery.pk) == "skipped"
    assert mail.outbox == []


def test_a_digest_item_is_never_sent_on_its_own(delivery):
    NotificationDelivery.objects.filter(pk=delivery.pk).update(delivery_mode=DeliveryMode.DIGEST)
    assert services.deliver_alert(delivery.pk) == "skipped"
    assert mail.outbox == []


def test_a_failed_send_is_retried_then_marked_failed(delivery):
    with mock.patch("django.core.mail.EmailMultiAlternatives.send", side_effect=AnymailAPIError("503 from ESP")):
        for attempt in range(1, services.MAX_SEND_ATTEMPTS):
            with pytest.raises(services.RetryLater):
                services.deliver_alert(delivery.pk)
            delivery.refresh_from_db()
            assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, attempt)
            assert "503 from ESP" in delivery.last_error
        assert services.deliver_alert(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, services.MAX_SEND_ATTEMPTS)
    assert mail.outbox == []


def test_a_refused_address_fails_at_once(delivery):
    with mock.patch("django.core.mail.EmailMultiAlternatives.send", side_effect=AnymailRecipientsRefused("refused")):
        assert services.deliver_alert(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)


def test_the_task_retries_a_transient_failure(delivery):
    from notifications import tasks

    with mock.patch.object(tasks.send_delivery, "retry", side_effect=RuntimeError("retry scheduled")) as retry, \
            mock.patch("django.core.mail.EmailMultiAlternatives.send", side_effect=AnymailAPIError("timeout")):
        with pytest.raises(RuntimeError, match="retry scheduled"):
            tasks.send_delivery.run(delivery.pk)
    assert retry.call_args.kwargs["countdown"] == tasks.RETRY_DELAYS[0]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING


def test_a_retried_failure_is_sent(delivery, django_capture_on_commit_callbacks):
    NotificationDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, attempts=3, last_error="x")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.retry_deliveries(NotificationDelivery.objects.all()) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 1)
    assert len(mail.outbox) == 1


# -- the email ------------------------------------------------------------------------------------


def test_the_email_names_the_type_and_patient_and_links_to_the_application(delivery, application, alice):
    services.deliver_alert(delivery.pk)
    message = mail.outbox[0]
    html = message.alternatives[0][0]
    link = f"https://portal.example.test/admin/notifications/paymentplanapplication/{application.pk}/change/"

    assert message.to == [alice.email]
    assert message.subject == "Declined: payment-plan alert from Maple Dental"
    assert message.alternatives[0][1] == "text/html"
    for part in (message.body, html):
        assert "Declined" in part
        assert "Rosalind O." in part
        assert link in part
        assert "Maple Dental" in part


@pytest.mark.parametrize("alert_type", list(AlertType))
def test_no_other_health_or_financial_detail_appears(application, alice, plan_patient, alert_type):
    delivery = NotificationDelivery.objects.create(
        practice=application.practice, application=application, alert_type=alert_type, recipient=alice
    )
    services.deliver_alert(delivery.pk)
    message = mail.outbox[0]
    html = message.alternatives[0][0]
    forbidden = [
        plan_patient.last_name,  # only the initial
        plan_patient.email,
        plan_patient.chart_number,
        plan_patient.phone,
        plan_patient.zip_code,
        plan_patient.date_of_birth.isoformat(),
        plan_patient.date_of_birth.strftime("%m/%d/%Y"),
        application.lender_application_id,
        "$",
    ]
    for part in (message.subject, message.body, html):
        for detail in forbidden:
            assert detail not in part, (detail, part)
    assert "Rosalind" not in message.subject
    # Email-service metadata carries an opaque reference only.
    assert message.metadata == {"ref": f"delivery-{delivery.pk}"}


@pytest.mark.parametrize(
    "first,last,expected",
    [("Rosalind", "okonkwo", "Rosalind O."), ("  Ann ", " Lee", "Ann L."), ("Ann", "", "Ann"), ("", "", "A patient")],
)
def test_short_patient_name(first, last, expected):
    assert emails.short_patient_name(first, last) == expected


def test_html_is_escaped(office, alice):
    from tests.factories import PatientFactory

    patient = PatientFactory(practice=office, first_name="<b>Eve</b>", last_name="X")
    application = ApplicationFactory(practice=office, patient=patient)
    delivery = NotificationDelivery.objects.create(
        practice=office, application=application, alert_type=AlertType.ACTIVATED, recipient=alice
    )
    services.deliver_alert(delivery.pk)
    html = mail.outbox[0].alternatives[0][0]
    assert "<b>Eve</b>" not in html and "&lt;b&gt;Eve&lt;/b&gt;" in html


# -- through a real provider backend (the local stand-in of its API) ---------------------------


def test_an_alert_goes_through_the_providers_real_backend(delivery, use_provider, ticking):
    standin = use_provider("postmark")
    assert services.deliver_alert(delivery.pk) == "sent"
    assert [m["to"] for m in standin.accepted()] == ["alice@maple.example"]


def test_an_alert_to_an_address_the_provider_refuses_fails_at_once(delivery, alice, use_provider, ticking):
    use_provider("amazon_ses")
    alice.email = "inactive.alice@maple.example"
    alice.save()
    assert services.deliver_alert(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "[MessageRejected]" in delivery.last_error


def test_a_throttled_alert_waits_as_long_as_the_provider_asked(delivery, use_provider, ticking):
    from core.sending import engine, ratelimit
    from core.sending.transports import Item
    from core.sending.transports import email as email_transport
    from notifications import tasks

    standin = use_provider("postmark")
    standin.configure(rate_limit=0.01, burst=1)
    first = Item(key=None, to=delivery.recipient.email, payload=emails.alert_message(delivery))
    standin_first = engine.send_one(first, via=email_transport.for_one())  # uses the account's one call
    assert standin_first.sent
    with pytest.raises(services.RetryLater) as raised:
        services.deliver_alert(delivery.pk)
    assert raised.value.retry_after == 100
    assert tasks.retry_countdown(0, raised.value) == 100  # not the usual 60 s
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and "HTTP 429" in delivery.last_error
    assert ratelimit.limiter("email").paused_for() > 90
