"""The patient list counts at most a capped number of rows, so a million patients page fast."""

import pytest

from patients.admin import paging
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

URL = "/admin/patients/patient/"


def test_a_list_under_the_cap_shows_the_exact_count(client_a, practice_a):
    PatientFactory.create_batch(3, practice=practice_a)
    response = client_a.get(URL)
    assert response.status_code == 200
    assert "3 patients" in response.content.decode()
    assert "More than" not in response.content.decode()


def test_a_list_past_the_cap_says_more_than_and_offers_only_the_counted_pages(
    client_a, practice_a, practice_b, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr(paging, "COUNT_CAP", 4)
    PatientFactory.create_batch(6, practice=practice_a)
    PatientFactory.create_batch(6, practice=practice_b)  # another practice's rows are not counted
    with django_assert_max_num_queries(12):
        response = client_a.get(URL, {"p": 1})
    page = response.content.decode()
    assert response.status_code == 200
    assert "More than 4 patients: search or filter to narrow the list." in page
    assert "Select all 4" not in page  # not a total, so not offered as one
    assert "More than 4 patients match: narrow the list to act on all of them." in page
    assert response.context["cl"].result_count == 4


def test_the_capped_count_follows_filters_and_scoping(client_a, practice_a, practice_b, monkeypatch):
    monkeypatch.setattr(paging, "COUNT_CAP", 4)
    PatientFactory.create_batch(2, practice=practice_a, email_consent=False)
    PatientFactory.create_batch(5, practice=practice_a)
    PatientFactory.create_batch(9, practice=practice_b, email_consent=False)
    response = client_a.get(URL, {"email_consent__exact": "0"})
    assert "2 patients" in response.content.decode()
    assert response.context["cl"].paginator.capped is False


def test_the_invitation_list_is_capped_too_and_newest_first(client_a, practice_a, monkeypatch):
    from tests.invitations.factories import InvitationFactory

    monkeypatch.setattr(paging, "COUNT_CAP", 2)
    made = [InvitationFactory(patient=PatientFactory(practice=practice_a)) for _ in range(3)]
    response = client_a.get("/admin/invitations/invitation/")
    assert response.status_code == 200
    assert "More than 2 invitations: search or filter to narrow the list." in response.content.decode()
    assert [i.pk for i in response.context["cl"].result_list] == [i.pk for i in reversed(made)]
