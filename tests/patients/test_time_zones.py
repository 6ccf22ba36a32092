"""One time zone per practice on every staff page, named once in the header."""

import datetime

import pytest
from django.urls import reverse

from invitations import bulk
from patients.models import Role
from tests.factories import PatientFactory, PracticeFactory, staff_member
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db

# 23:03 UTC is 6:03 PM in New York (EST, March 2nd).
AT = datetime.datetime(2026, 3, 2, 23, 3, tzinfo=datetime.timezone.utc)


@pytest.fixture
def new_york():
    return PracticeFactory(name="Maple Street Dental", time_zone="America/New_York")


def test_the_front_desk_sees_every_list_in_the_practices_zone(client, new_york):
    client.force_login(staff_member(new_york, Role.FRONT_DESK, username="desk_ny"))
    InvitationFactory(patient=PatientFactory(practice=new_york), created_at=AT)
    content = client.get(reverse("admin:invitations_invitation_changelist")).content.decode()
    assert "6:03 p.m." in content and "11:03 p.m." not in content
    assert content.count("Times in America/New_York") == 1
    audit = client.get(reverse("admin:patients_auditentry_changelist")).content.decode()
    assert "Times in America/New_York" in audit


def test_a_patients_page_is_in_their_practices_zone_for_anyone(admin_client, new_york):
    patient = PatientFactory(practice=new_york)
    InvitationFactory(patient=patient, created_at=AT)
    from patients.models import Patient

    Patient.objects.filter(pk=patient.pk).update(created_at=AT)
    content = admin_client.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert content.count("Times in America/New_York") == 1
    assert "6:03 PM" in content  # the invitation box
    assert "6:03 p.m." in content and "11:03 p.m." not in content  # the form's "created at" too


def test_a_run_and_a_dashboard_are_in_their_practices_zone_for_a_superuser(admin_client, django_capture_on_commit_callbacks):
    chicago = PracticeFactory(time_zone="America/Chicago")
    with django_capture_on_commit_callbacks(execute=False):
        run = bulk.start_run(practice=chicago, now=AT, plan_later=True)
    for url in (reverse("admin:invitations_bulkrun_progress", args=[run.pk]),
                reverse("admin:invitations_portal_dashboard", args=[chicago.pk])):
        assert "Times in America/Chicago" in admin_client.get(url).content.decode(), url


def test_a_member_of_offices_in_two_zones_sees_the_servers_zone_named(client, new_york):
    west = PracticeFactory(time_zone="America/Los_Angeles")
    member = staff_member(new_york, Role.MANAGER, username="two_zones")
    from patients.models import Membership

    Membership.objects.create(user=member, practice=west, role=Role.MANAGER)
    client.force_login(member)
    assert "Times in UTC" in client.get(reverse("admin:invitations_invitation_changelist")).content.decode()
