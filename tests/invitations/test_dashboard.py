"""The portal access dashboard: totals, the inactive split and reasons linking to the filtered
patient list, the 12-month chart, the switches, a bounded number of queries, and scoping."""

import datetime
import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse

from invitations import adoption
from invitations.models import Status
from patients.audit import AuditAction, AuditEntry
from patients.models import Role
from tests.clock import NOW
from tests.factories import PatientFactory, UserFactory, staff_member
from tests.invitations.factories import InvitationFactory
from tests.invitations.patient_admin import dashboard_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
DAY = datetime.timedelta(days=1)


@pytest.fixture
def populated(practice_a):
    """2 active, 1 never invited, 1 out, 1 expired, 1 failed, 1 no consent (never invited)."""
    for _ in range(2):
        patient = PatientFactory(practice=practice_a, portal_user=UserFactory())
        InvitationFactory(patient=patient, created_at=NOW - 40 * DAY, status=Status.ACCEPTED, accepted_at=NOW - 39 * DAY)
    PatientFactory(practice=practice_a)
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - DAY)
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - 8 * DAY)  # ran out, unswept
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - 3 * DAY, status=Status.FAILED)
    PatientFactory(practice=practice_a, email_consent=False)
    return practice_a


def test_the_figures_split_inactive_patients_and_give_reasons(populated):
    figures = adoption.figures(populated, now=NOW)
    assert (figures.total, figures.active, figures.inactive) == (7, 2, 5)
    split = {key: count for key, _label, count, _status in figures.split}
    assert split == {"never_invited": 2, "pending": 0, "out": 1, "expired": 1, "failed": 1, "revoked": 0}
    assert sum(split.values()) == figures.inactive
    assert figures.not_eligible == [("no_consent", 1)]


def test_the_chart_counts_sent_and_accepted_per_month_in_the_practices_time_zone(practice_a):
    practice_a.time_zone = "America/New_York"
    practice_a.save()
    # 2026-03-01 02:00 UTC is still February in New York.
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=datetime.datetime(2026, 3, 1, 2, 0, tzinfo=datetime.timezone.utc))
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - DAY)
    accepted = InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - DAY, status=Status.ACCEPTED)
    accepted.accepted_at = NOW - DAY
    accepted.save()
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - 400 * DAY)  # too old
    months = adoption.monthly_funnel(practice_a, now=NOW)
    assert len(months) == 12
    assert months[0].start == datetime.date(2025, 4, 1) and months[-1].start == datetime.date(2026, 3, 1)
    assert (months[-2].sent, months[-2].accepted) == (1, 0)
    assert (months[-1].sent, months[-1].accepted, months[-1].rate) == (2, 1, 0.5)
    assert sum(m.sent for m in months) == 3

    svg = str(adoption.chart_svg(months))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<title id=\"funnel-title\">" in svg and "Mar 2026: 2 sent, 1 accepted, 50% accepted" in svg
    assert "<script" not in svg


def test_the_dashboard_page_links_each_figure_to_the_filtered_patient_list(client_a, populated):
    response = client_a.get(dashboard_url(populated))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page and "Not registered yet" in page
    links = re.findall(r'href="(/admin/patients/patient/\?[^"]*)"', page)
    params = [parse_qs(urlparse(link.replace("&amp;", "&")).query) for link in links]
    assert {"portal_status": ["expired"], "portal": ["no"]} in params
    assert {"no_invite": ["no_consent"]} in params
    # Each link really gives the number next to it.
    for link, expected in (("?portal_status=not_invited&portal=no", 2), ("?no_invite=no_consent", 1), ("?portal=yes", 2)):
        listing = client_a.get(reverse("admin:patients_patient_changelist") + link)
        assert listing.status_code == 200
        assert len(listing.context["cl"].result_list) == expected, link


def test_the_dashboard_costs_a_bounded_number_of_queries(client_a, populated, django_assert_max_num_queries):
    client_a.get(dashboard_url(populated))  # warm the session and content types
    with django_assert_max_num_queries(16):
        assert client_a.get(dashboard_url(populated)).status_code == 200
    for _ in range(20):
        InvitationFactory(patient=PatientFactory(practice=populated), created_at=NOW - 9 * DAY)
    with django_assert_max_num_queries(16):
        assert client_a.get(dashboard_url(populated)).status_code == 200


def test_practice_admins_change_the_switches_on_the_page_and_it_is_audited(client, admin_a, practice_a):
    client.force_login(admin_a)
    data = {
        "invitations_enabled": "on", "link_lifetime_days": "10", "monthly_reinvite_enabled": "on",
        "monthly_reinvite_day": "5", "monthly_reinvite_cap": "3",
    }  # activation email switched off
    response = client.post(dashboard_url(practice_a), data)
    assert response.status_code == 302
    practice_a.refresh_from_db()
    assert (practice_a.activation_email_enabled, practice_a.link_lifetime_days, practice_a.monthly_reinvite_day) == (False, 10, 5)
    entry = AuditEntry.objects.get(action=AuditAction.PRACTICE_SETTINGS)
    assert entry.details["activation_email_enabled"] is False


def test_other_roles_see_the_switches_but_cannot_change_them(client_a, practice_a):
    page = client_a.get(dashboard_url(practice_a)).content.decode()
    assert "Only the practice's admins change these settings." in page
    assert client_a.post(dashboard_url(practice_a), {"link_lifetime_days": "3"}).status_code == 403
    practice_a.refresh_from_db()
    assert practice_a.link_lifetime_days == 7


def test_another_practices_dashboard_is_404(client_a, practice_b):
    assert client_a.get(dashboard_url(practice_b)).status_code == 404
    assert client_a.post(dashboard_url(practice_b), {}).status_code == 404


def test_a_user_of_two_practices_picks_one_and_links_keep_the_practice(client, practice_a, practice_b):
    user = staff_member(practice_a, Role.VIEWER, username="two_offices")
    from patients.models import Membership

    Membership.objects.create(user=user, practice=practice_b, role=Role.VIEWER)
    client.force_login(user)
    index = client.get(reverse("admin:invitations_portal")).content.decode()
    assert dashboard_url(practice_a) in index and dashboard_url(practice_b) in index
    page = client.get(dashboard_url(practice_b)).content.decode()
    assert f"practice__id__exact={practice_b.pk}" in page


def test_saving_the_switches_recounts_the_figures(
    client, admin_a, practice_a, eager_celery, django_capture_on_commit_callbacks
):
    client.force_login(admin_a)
    PatientFactory(practice=practice_a)
    url = dashboard_url(practice_a)
    assert client.get(url).context["figures"].not_eligible == []
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"invitations_enabled": "on", "link_lifetime_days": "7", "monthly_reinvite_day": "1", "monthly_reinvite_cap": "3"})
    assert client.get(url).context["figures"].not_eligible == [("activation_email_disabled", 1)]


def test_it_counts_the_patients_registered_by_a_representative_once_each(practice_a, practice_b, django_assert_max_num_queries):
    from patients.models.representatives import AccessStatus
    from tests.family_factories import (
        AccessFactory,
        RepresentativeFactory,
        child,
        teenager,
    )

    linked = dict(status=AccessStatus.ACTIVE, linked_at=NOW - DAY)
    two_parents = child(practice_a)
    AccessFactory(patient=two_parents, **linked)
    AccessFactory(patient=two_parents, **linked)  # counted once, not per parent
    sibling = child(practice_a, first_name="Lucas")
    AccessFactory(patient=sibling, representative=RepresentativeFactory(practice=practice_a), **linked)
    AccessFactory(patient=child(practice_a))  # invited, not linked yet
    AccessFactory(patient=child(practice_a), status=AccessStatus.REVOKED)
    AccessFactory(patient=child(practice_a), ends_at=NOW - DAY, **linked)  # past its end date, not ended by the job yet
    AccessFactory(patient=child(practice_a), ends_at=NOW + DAY, **linked)  # in force one more day
    AccessFactory(patient=teenager(practice_a, portal_user=UserFactory()), **linked)  # registered on their own
    AccessFactory(patient=child(practice_b), **linked)  # another practice

    with django_assert_max_num_queries(6):  # the totals' scan counts it too: no query of its own
        figures = adoption.figures(practice_a, now=NOW)
    assert (figures.total, figures.active, figures.by_representative) == (7, 1, 3)
    assert adoption.Figures.from_json(figures.to_json()).by_representative == 3
    assert adoption.Figures.from_json({"total": 2}).by_representative == 0  # a snapshot counted before the figure existed

    practice_a.family_access_enabled = False  # representatives cannot open the portal then
    practice_a.save()
    assert adoption.figures(practice_a, now=NOW).by_representative == 0


def test_the_dashboard_shows_the_patients_registered_by_a_representative(client_a, practice_a, practice_b):
    from patients.models.representatives import AccessStatus
    from tests.family_factories import AccessFactory, child

    AccessFactory(patient=child(practice_a), status=AccessStatus.ACTIVE, linked_at=NOW - DAY)
    for _ in range(2):
        AccessFactory(patient=child(practice_b), status=AccessStatus.ACTIVE, linked_at=NOW - DAY)
    page = " ".join(client_a.get(dashboard_url(practice_a)).content.decode().split())
    card = re.search(r'id="registered-by-representative"[^>]*><span class="figure">(\d+)</span>Registered by a representative', page)
    assert card and card.group(1) == "1"
    assert "Registered on the portal" in page
