"""Staff alert emails: subject, plain text and HTML from templates/notifications/email/.

An alert names its type and the patient as first name + last initial, links to the
application in the admin, and says nothing else about the patient's health or finances.
"""

from dataclasses import dataclass
from typing import Iterable

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from .models import AlertType, NotificationDelivery, PaymentPlanApplication

DESCRIPTIONS = {
    AlertType.INCOMPLETE: "A patient started a payment-plan application 14 days ago and has not finished it.",
    AlertType.DECLINED: "A patient's payment-plan application was declined.",
    AlertType.OPEN_APPROVAL: "A patient's payment plan was approved 48 hours ago and is not activated yet.",
    AlertType.ACTIVATED: "A patient activated their payment plan.",
    AlertType.PRE_QUALIFIED: "A patient is pre-qualified for a payment plan.",
}


def short_patient_name(first_name: str, last_name: str) -> str:
    """'Jane D.': enough for the team to recognise the patient, no more."""
    first = (first_name or "").strip()
    initial = (last_name or "").strip()[:1].upper()
    if first and initial:
        return f"{first} {initial}."
    return first or (f"{initial}." if initial else "A patient")


def application_admin_url(application_id: int) -> str:
    return settings.PORTAL_BASE_URL + reverse(
        "admin:notifications_paymentplanapplication_change", args=[application_id]
    )


def preferences_url(practice_id: int) -> str:
    return settings.PORTAL_BASE_URL + reverse("admin:notifications_my_preferences") + f"?practice={practice_id}"


def _one_line(text: str) -> str:
    # Email subject must not contain newlines.
    return " ".join(text.split())


@dataclass(frozen=True)
class AlertItem:
    alert_label: str
    patient_name: str
    application_url: str


def _item(alert_type: str, application: PaymentPlanApplication) -> AlertItem:
    return AlertItem(
        alert_label=AlertType(alert_type).label,
        patient_name=short_patient_name(application.patient.first_name, application.patient.last_name),
        application_url=application_admin_url(application.pk),
    )


def alert_message(delivery: NotificationDelivery) -> EmailMultiAlternatives:
    application = delivery.application
    item = _item(delivery.alert_type, application)
    context = {
        "alert_label": item.alert_label,
        "description": DESCRIPTIONS[AlertType(delivery.alert_type)],
        "patient_name": item.patient_name,
        "application_url": item.application_url,
        "practice": delivery.practice,
        "preferences_url": preferences_url(delivery.practice_id),
    }
    return _message("alert", context, to=delivery.recipient.email, tag=f"delivery-{delivery.pk}")


def digest_message(*, deliveries: Iterable[NotificationDelivery], practice, recipient) -> EmailMultiAlternatives:
    items = [_item(d.alert_type, d.application) for d in deliveries]
    context = {"items": items, "practice": practice, "preferences_url": preferences_url(practice.pk)}
    return _message("digest", context, to=recipient.email, tag="digest")


def _message(name: str, context: dict, *, to: str, tag: str) -> EmailMultiAlternatives:
    subject = _one_line(render_to_string(f"notifications/email/{name}_subject.txt", context))
    text = render_to_string(f"notifications/email/{name}.txt", context)
    html = render_to_string(f"notifications/email/{name}.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=[to])
    message.attach_alternative(html, "text/html")
    # Email-service metadata carries opaque ids only.
    message.tags = ["practice-alert"]
    message.metadata = {"ref": tag}
    return message
