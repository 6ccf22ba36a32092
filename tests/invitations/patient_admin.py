"""Shared by the tests of the staff pages about invitations: the patient admin's invitation parts
(tests/invitations/test_admin_*.py), the dashboard, Activate Now and the template editor."""

from django.contrib.messages import get_messages
from django.urls import reverse

CHANGELIST = reverse("admin:patients_patient_changelist")


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def invitation_url(patient, operation):
    return reverse("admin:patients_patient_invitation", args=[patient.pk, operation])


def add_patient_data(practice, **overrides):
    data = {
        "practice": practice.pk, "chart_number": "N100", "first_name": "Ann", "last_name": "Lee",
        "date_of_birth": "1990-04-01", "birth_sex": "F", "email": "ann@example.com", "phone": "",
        "zip_code": "02139", "email_consent": "on", "send_invitation": "on", "preferred_language": "en",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def post_action(client, action, patients, **extra):
    data = {"action": action, "_selected_action": [p.pk for p in patients], **extra}
    return client.post(CHANGELIST, data)


def dashboard_url(practice):
    return reverse("admin:invitations_portal_dashboard", args=[practice.pk])


def activate_url(practice):
    return reverse("admin:invitations_portal_activate", args=[practice.pk])


def editor_url(practice):
    return reverse("admin:invitations_portal_template", args=[practice.pk])


def preview_url(practice):
    return reverse("admin:invitations_portal_template_preview", args=[practice.pk])
