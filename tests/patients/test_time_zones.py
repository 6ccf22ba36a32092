"""One time zone per practice on every staff page, named once in the header."""

import datetime

import pytest
from django.urls import reverse

from invitations.bulk import runs
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
    assert "6:03 PM" in content and "11:03 PM" not in content and "p.m." not in content
    assert content.count("Times in Eastern Time") == 1
    audit = client.get(reverse("admin:patients_auditentry_changelist")).content.decode()
    assert "Times in Eastern Time" in audit


def test_a_patients_page_is_in_their_practices_zone_for_anyone(admin_client, new_york):
    patient = PatientFactory(practice=new_york)
    InvitationFactory(patient=patient, created_at=AT)
    from patients.models import Patient

    Patient.objects.filter(pk=patient.pk).update(created_at=AT)
    content = admin_client.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert content.count("Times in Eastern Time") == 1
    assert "6:03 PM" in content and "11:03 PM" not in content  # the invitation box and the form's "created at"
    assert "Mar. 2, 2026, 6:03 PM" not in content and "March 2, 2026, 6:03 PM" in content  # one format


def test_a_run_and_a_dashboard_are_in_their_practices_zone_for_a_superuser(admin_client, django_capture_on_commit_callbacks):
    chicago = PracticeFactory(time_zone="America/Chicago")
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=chicago, now=AT, plan_later=True)
    for url in (reverse("admin:invitations_bulkrun_progress", args=[run.pk]),
                reverse("admin:invitations_portal_dashboard", args=[chicago.pk])):
        assert "Times in Central Time" in admin_client.get(url).content.decode(), url


def test_a_member_of_offices_in_two_zones_sees_each_row_in_its_practices_zone(client, new_york):
    """The audit trail and the team list of a member of offices in New York and Los Angeles: each
    row's time is in its own practice's zone, named; the header says so."""
    west = PracticeFactory(time_zone="America/Los_Angeles")
    member = staff_member(new_york, Role.ADMIN, username="two_zones")
    from patients import audit
    from patients.models import AuditEntry, Membership

    Membership.objects.create(user=member, practice=west, role=Role.ADMIN)
    for practice in (new_york, west):
        audit.record(practice_id=practice.pk, actor=member, action=audit.AuditAction.PRACTICE_SETTINGS, summary="Changed")
    AuditEntry.objects.update(created_at=AT)
    Membership.objects.update(created_at=AT)
    client.force_login(member)
    for name in ("admin:patients_auditentry_changelist", "admin:patients_membership_changelist"):
        content = client.get(reverse(name)).content.decode()
        assert "Mar. 2, 2026" not in content  # (March is written out)
        assert "March 2, 2026, 6:03 PM Eastern Time" in content, name
        assert "March 2, 2026, 3:03 PM Pacific Time" in content, name
        assert "Times in each practice&#x27;s time zone" in content or "Times in each practice's time zone" in content
        assert "11:03 PM" not in content


def test_a_superuser_of_practices_in_one_zone_sees_that_zone(admin_client, new_york):
    PracticeFactory(time_zone="America/New_York")
    assert "Times in Eastern Time" in admin_client.get(reverse("admin:patients_membership_changelist")).content.decode()


def test_a_member_of_two_zones_sees_a_rows_page_in_its_practices_zone(client, new_york):
    west = PracticeFactory(time_zone="America/Los_Angeles")
    member = staff_member(new_york, Role.ADMIN, username="two_zones_page")
    from patients.models import Membership

    Membership.objects.create(user=member, practice=west, role=Role.ADMIN)
    client.force_login(member)
    patient = PatientFactory(practice=west)
    content = client.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert content.count("Times in Pacific Time") == 1


@pytest.mark.parametrize("zone,words", [
    ("America/New_York", "Eastern Time"), ("America/Chicago", "Central Time"), ("America/Denver", "Mountain Time"),
    ("America/Phoenix", "Arizona Time"), ("America/Los_Angeles", "Pacific Time"), ("Pacific/Honolulu", "Hawaii Time"),
    ("America/Indiana/Indianapolis", "Eastern Time"), ("Europe/London", "UK Time"), ("UTC", "UTC"),
    ("Europe/Lisbon", "Lisbon time"), ("America/Argentina/Buenos_Aires", "Buenos Aires time"),
])
def test_zones_are_named_in_words(zone, words):
    from patients.timezones import zone_in_words

    assert zone_in_words(zone) == words


def test_the_invitation_and_run_lists_of_a_member_of_two_zones_show_each_rows_zone(client, new_york, django_capture_on_commit_callbacks):
    west = PracticeFactory(time_zone="America/Los_Angeles")
    member = staff_member(new_york, Role.ADMIN, username="two_zones_lists")
    from invitations.models.bulk_runs import BulkRun
    from patients.models import Membership

    Membership.objects.create(user=member, practice=west, role=Role.ADMIN)
    for practice in (new_york, west):
        InvitationFactory(patient=PatientFactory(practice=practice), created_at=AT)
        with django_capture_on_commit_callbacks(execute=False):
            runs.start_run(practice=practice, now=AT, plan_later=True)
    BulkRun.objects.update(created_at=AT)
    client.force_login(member)
    for name in ("admin:invitations_invitation_changelist", "admin:invitations_bulkrun_changelist"):
        content = client.get(reverse(name)).content.decode()
        assert "March 2, 2026, 6:03 PM Eastern Time" in content and "March 2, 2026, 3:03 PM Pacific Time" in content, name
        assert "11:03 PM" not in content, name
