"""The patient list's portal status: the coloured column, its filter (agreeing with the column for
every status), sorting by it, and a query count that does not grow with the rows."""

import pytest

from invitations.models import Status
from tests.factories import PatientFactory
from tests.invitations.factories import InvitationFactory
from tests.invitations.patient_admin import CHANGELIST

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


@pytest.mark.parametrize(
    "value,expected",
    [
        ("not_invited", {"Notinvited"}),
        ("pending", {"Pendingx"}),
        ("sent", {"Sentx"}),
        ("expired", {"Expiredx", "Runout"}),
        ("failed", {"Failedx"}),
        ("revoked", {"Revokedx"}),
        ("active", {"Activex"}),
    ],
)
def test_the_status_filter_selects_each_status(client_a, one_of_each, value, expected):
    response = client_a.get(CHANGELIST + f"?portal_status={value}")
    assert {p.last_name for p in response.context["cl"].result_list} == expected


def test_the_status_filter_agrees_with_the_status_column_for_every_status(one_of_each, frozen):
    from django.utils import timezone

    from invitations.patient_status import PortalStatus, filter_by_portal_status, with_portal_status
    from patients.models import Patient

    # A patient whose account was removed after registering: latest invitation accepted, no user.
    InvitationFactory(patient=PatientFactory(practice=one_of_each["Sentx"].practice, last_name="Acceptedx"), status=Status.ACCEPTED)
    now = timezone.now()
    annotated = with_portal_status(Patient.objects.all(), now)
    for value in PortalStatus.LABELS:
        column = {p.last_name for p in annotated if p.portal_status == value}
        assert {p.last_name for p in filter_by_portal_status(annotated, value, now)} == column, value


def test_the_status_column_shows_coloured_tags(client_a, one_of_each):
    content = client_a.get(CHANGELIST).content.decode()
    for label in ["Not invited", "Being sent", "Sent", "Expired", "Failed", "Revoked", "Registered"]:
        assert f">{label}</span>" in content
    assert 'class="portal-status portal-status-expired"' in content


def test_the_list_can_be_sorted_by_portal_status(client_a, one_of_each):
    response = client_a.get(CHANGELIST)
    index = next(i for i, h in enumerate(response.context["cl"].list_display) if h == "invitation_status")

    def statuses(order: str) -> list[str]:
        ordered = client_a.get(CHANGELIST + f"?o={order}")
        assert ordered.status_code == 200
        return [p.portal_status for p in ordered.context["cl"].result_list]

    ascending, descending = statuses(f"{index}"), statuses(f"-{index}")
    assert len(set(ascending)) == 7  # one_of_each: every status, so an unsorted list shows
    assert ascending == sorted(ascending)
    assert descending == sorted(ascending, reverse=True)


def test_the_patient_list_query_count_does_not_grow_with_rows(client_a, practice_a, django_assert_max_num_queries):
    def count_queries():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            assert client_a.get(CHANGELIST).status_code == 200
        return len(captured)

    for i in range(5):
        InvitationFactory(patient=PatientFactory(practice=practice_a))
    few = count_queries()
    for i in range(40):
        InvitationFactory(patient=PatientFactory(practice=practice_a), status=[Status.SENT, Status.FAILED][i % 2])
        PatientFactory(practice=practice_a)
    with django_assert_max_num_queries(few):
        client_a.get(CHANGELIST)
    assert count_queries() == few
