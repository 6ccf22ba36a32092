"""Roles map to groups with permissions, and are checked at each row's practice."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from patients.models import Membership, Patient, Role
from patients.roles import GROUP_NAMES
from tests.factories import PatientFactory, staff_member

pytestmark = pytest.mark.django_db


def test_membership_gives_the_role_group_and_staff_status(practice_a):
    user = staff_member(practice_a, Role.VIEWER, is_staff=False)
    assert user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == [GROUP_NAMES[Role.VIEWER]]
    Membership.objects.filter(user=user).delete()
    user.refresh_from_db()
    assert not user.is_staff
    assert not user.groups.exists()


def test_groups_exist_for_every_role():
    assert set(Group.objects.values_list("name", flat=True)) >= set(GROUP_NAMES.values())


def test_viewer_cannot_change_a_patient(client, practice_a):
    patient = PatientFactory(practice=practice_a, first_name="Orig")
    viewer = staff_member(practice_a, Role.VIEWER)
    client.force_login(viewer)
    url = reverse("admin:patients_patient_change", args=[patient.pk])
    response = client.get(url)
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    client.post(url, {"practice": practice_a.pk, "chart_number": patient.chart_number, "first_name": "Changed"})
    patient.refresh_from_db()
    assert patient.first_name == "Orig"
    assert client.get(reverse("admin:patients_patient_add")).status_code == 403


def test_front_desk_cannot_change_practice_settings(client, practice_a):
    client.force_login(staff_member(practice_a, Role.FRONT_DESK))
    url = reverse("admin:patients_practice_change", args=[practice_a.pk])
    client.post(url, {"name": "Renamed"})
    practice_a.refresh_from_db()
    assert practice_a.name == "Practice A"
    assert client.get(reverse("admin:patients_membership_add")).status_code == 403


def test_practice_admin_changes_own_practice_settings(client, practice_a):
    client.force_login(staff_member(practice_a, Role.ADMIN))
    url = reverse("admin:patients_practice_change", args=[practice_a.pk])
    data = {
        "name": "Renamed", "time_zone": "America/New_York", "contact_email": "", "contact_phone": "", "default_language": "en",
        "invitations_enabled": "on", "activation_email_enabled": "on", "link_lifetime_days": 7,
        "monthly_reinvite_day": 1, "monthly_reinvite_cap": 3, "staff_idle_minutes": 30, "country": "US", "bulk_channels": "email",
    }
    response = client.post(url, data)
    assert response.status_code == 302
    practice_a.refresh_from_db()
    assert practice_a.name == "Renamed"


def test_role_is_checked_at_the_rows_practice(client, practice_a, practice_b):
    """A manager at A who is only a viewer at B cannot change B's patients."""
    user = staff_member(practice_a, Role.MANAGER)
    Membership.objects.create(user=user, practice=practice_b, role=Role.VIEWER)
    patient_b = PatientFactory(practice=practice_b, first_name="Orig")
    client.force_login(user)
    url = reverse("admin:patients_patient_change", args=[patient_b.pk])
    assert client.get(url).context["has_change_permission"] is False
    client.post(url, {"chart_number": patient_b.chart_number, "first_name": "Changed"})
    patient_b.refresh_from_db()
    assert patient_b.first_name == "Orig"
    # and the add form offers only practice A
    form = client.get(reverse("admin:patients_patient_add")).context["adminform"].form
    assert list(form.fields["practice"].queryset) == [practice_a]


def test_practice_admin_adds_a_team_member_by_email(client, practice_a, practice_b):
    client.force_login(staff_member(practice_a, Role.ADMIN))
    response = client.post(
        reverse("admin:patients_membership_add"),
        {"practice": practice_a.pk, "email": "New.Person@Example.com", "first_name": "New", "last_name": "Person", "role": Role.FRONT_DESK},
    )
    assert response.status_code == 302
    membership = Membership.objects.get(user__email="new.person@example.com")
    assert membership.practice == practice_a and membership.user.is_staff
    assert membership.user.has_usable_password()  # so "Forgotten your password?" works
    # cannot add members to a practice where they are not admin
    response = client.post(
        reverse("admin:patients_membership_add"),
        {"practice": practice_b.pk, "email": "x@example.com", "role": Role.FRONT_DESK},
    )
    assert response.status_code == 200
    assert not Membership.objects.filter(practice=practice_b).exists()


def test_manager_cannot_manage_members(client, practice_a):
    client.force_login(staff_member(practice_a, Role.MANAGER))
    assert client.get(reverse("admin:patients_membership_add")).status_code == 403


def test_patients_without_membership_never_reach_the_admin(client, practice_a):
    from tests.factories import UserFactory

    patient_user = UserFactory(is_staff=False)
    Patient.objects.filter(pk=PatientFactory(practice=practice_a).pk).update(portal_user=patient_user)
    client.force_login(patient_user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_adding_an_existing_staff_user_by_email_reuses_the_account(client, practice_a, practice_b):
    from tests.factories import StaffFactory

    existing = StaffFactory(username="rileyb", email="Riley@Example.com")
    Membership.objects.create(user=existing, practice=practice_b, role=Role.MANAGER)
    client.force_login(staff_member(practice_a, Role.ADMIN))
    url = reverse("admin:patients_membership_add")
    data = {"practice": practice_a.pk, "email": "riley@example.com", "role": Role.VIEWER}
    assert client.post(url, data).status_code == 302
    assert Membership.objects.get(practice=practice_a, role=Role.VIEWER).user == existing
    response = client.post(url, data)  # twice: a field error, not a crash
    assert response.status_code == 200
    assert "already a member" in str(response.context["adminform"].form.errors["email"])


def test_a_patient_account_with_the_same_email_never_becomes_staff(client, practice_a):
    from tests.factories import UserFactory

    patient_user = UserFactory(username="sam.patient", email="sam@example.com", is_staff=False)
    client.force_login(staff_member(practice_a, Role.ADMIN))
    client.post(reverse("admin:patients_membership_add"), {"practice": practice_a.pk, "email": "sam@example.com", "role": Role.VIEWER})
    patient_user.refresh_from_db()
    assert not patient_user.is_staff
    assert Membership.objects.get(practice=practice_a, role=Role.VIEWER).user.username == "sam@example.com"


def test_opt_out_entries_cannot_be_rewritten_and_front_desk_cannot_remove_them(client, practice_a):
    from patients.models import EmailOptOut

    entry = EmailOptOut.objects.create(practice=practice_a, email="stop@example.com", reason="spam_complaint")
    client.force_login(staff_member(practice_a, Role.FRONT_DESK))
    url = reverse("admin:patients_emailoptout_change", args=[entry.pk])
    client.post(url, {"email": "other@example.com", "reason": "staff"})
    entry.refresh_from_db()
    assert (entry.email, entry.reason) == ("stop@example.com", "spam_complaint")
    client.post(reverse("admin:patients_emailoptout_delete", args=[entry.pk]), {"post": "yes"})
    assert EmailOptOut.objects.filter(pk=entry.pk).exists()
