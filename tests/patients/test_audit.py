import pytest
from django.urls import reverse

from patients import audit
from patients.audit import AuditAction, AuditEntry
from patients.models import EmailOptOut, Membership, Role
from tests.factories import PatientFactory, staff_member

pytestmark = pytest.mark.django_db


def test_record_keeps_actor_practice_and_patient(practice_a, front_desk_a):
    patient = PatientFactory(practice=practice_a)
    entry = audit.record(practice_id=practice_a.pk, actor=front_desk_a, action=AuditAction.INVITE, summary="Invitation sent", patient_id=patient.pk)
    assert (entry.actor, entry.patient, entry.practice) == (front_desk_a, patient, practice_a)
    assert "Invitation sent" in str(entry) and patient.last_name not in str(entry)


def test_audit_trail_is_practice_scoped(client_a, practice_a, practice_b):
    mine = audit.record(practice_id=practice_a.pk, actor=None, action=AuditAction.CSV_IMPORT, summary="Imported 3 patients")
    theirs = audit.record(practice_id=practice_b.pk, actor=None, action=AuditAction.CSV_IMPORT, summary="Imported 99 patients")
    content = client_a.get(reverse("admin:patients_auditentry_changelist")).content.decode()
    assert "Imported 3 patients" in content and "Imported 99 patients" not in content
    assert client_a.get(reverse("admin:patients_auditentry_change", args=[theirs.pk])).status_code == 404
    assert client_a.get(reverse("admin:patients_auditentry_change", args=[mine.pk])).status_code == 200


def test_audit_trail_is_read_only(admin_client, practice_a):
    entry = audit.record(practice_id=practice_a.pk, actor=None, action=AuditAction.CSV_IMPORT, summary="x")
    assert admin_client.get(reverse("admin:patients_auditentry_add")).status_code == 403
    admin_client.post(reverse("admin:patients_auditentry_delete", args=[entry.pk]), {"post": "yes"})
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_practice_setting_changes_are_audited(client, practice_a):
    user = staff_member(practice_a, Role.ADMIN)
    client.force_login(user)
    data = {
        "name": practice_a.name, "time_zone": practice_a.time_zone, "contact_email": practice_a.contact_email, "contact_phone": practice_a.contact_phone,
        "invitations_enabled": "on", "link_lifetime_days": 5, "monthly_reinvite_day": 1, "monthly_reinvite_cap": 3, "staff_idle_minutes": 30,
        "country": "US", "bulk_channels": "email", "default_language": "en",
    }  # activation email switched off, lifetime 7 -> 5
    assert client.post(reverse("admin:patients_practice_change", args=[practice_a.pk]), data).status_code == 302
    entry = AuditEntry.objects.get(action=AuditAction.PRACTICE_SETTINGS)
    assert entry.actor == user and entry.practice == practice_a
    assert entry.details == {"activation_email_enabled": False, "link_lifetime_days": 5}


def test_opt_out_changes_are_audited(client, practice_a, front_desk_a):
    client.force_login(front_desk_a)
    client.post(reverse("admin:patients_emailoptout_add"), {"practice": practice_a.pk, "email": "Stop@Example.com", "reason": "staff"})
    optout = EmailOptOut.objects.get()
    manager = staff_member(practice_a, Role.MANAGER)  # removing an entry is for managers and admins
    client.force_login(manager)
    client.post(reverse("admin:patients_emailoptout_delete", args=[optout.pk]), {"post": "yes"})
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "actor"))
    assert actions == [(AuditAction.OPT_OUT_ADDED, front_desk_a.pk), (AuditAction.OPT_OUT_REMOVED, manager.pk)]


def test_team_changes_are_audited(client, practice_a):
    admin_user = staff_member(practice_a, Role.ADMIN)
    client.force_login(admin_user)
    client.post(reverse("admin:patients_membership_add"), {"practice": practice_a.pk, "email": "new@example.com", "role": Role.VIEWER})
    membership = Membership.objects.get(user__email="new@example.com")
    client.post(reverse("admin:patients_membership_change", args=[membership.pk]), {"role": Role.FRONT_DESK})
    client.post(reverse("admin:patients_membership_delete", args=[membership.pk]), {"post": "yes"})
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        AuditAction.MEMBER_ADDED, AuditAction.MEMBER_CHANGED, AuditAction.MEMBER_REMOVED,
    ]


def test_audit_trail_per_patient(client_a, practice_a):
    patient = PatientFactory(practice=practice_a)
    other = PatientFactory(practice=practice_a)
    audit.record(practice_id=practice_a.pk, actor=None, action=AuditAction.INVITE, summary="About the first", patient_id=patient.pk)
    audit.record(practice_id=practice_a.pk, actor=None, action=AuditAction.INVITE, summary="About the second", patient_id=other.pk)
    chart = client_a.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    url = reverse("admin:patients_auditentry_changelist") + f"?patient__id__exact={patient.pk}"
    assert url in chart
    content = client_a.get(url).content.decode()
    assert "About the first" in content and "About the second" not in content
