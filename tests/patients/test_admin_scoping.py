"""A staff user of practice A never sees or touches practice B's rows, in any admin."""

import pytest
from django.urls import reverse

from patients.models import EmailOptOut, Membership, Patient, Role
from tests.factories import PatientFactory, staff_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows_of_both(practice_a, practice_b):
    return {
        "patient_a": PatientFactory(practice=practice_a, last_name="Alpha"),
        "patient_b": PatientFactory(practice=practice_b, last_name="Bravo"),
        "optout_b": EmailOptOut.objects.create(practice=practice_b, email="b@example.com"),
    }


def test_it_lists_only_own_practice_patients(client_a, rows_of_both):
    response = client_a.get(reverse("admin:patients_patient_changelist"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Alpha" in content
    assert "Bravo" not in content


@pytest.mark.parametrize(
    "url_name,row",
    [
        ("admin:patients_patient_change", "patient_b"),
        ("admin:patients_patient_delete", "patient_b"),
        ("admin:patients_patient_history", "patient_b"),
        ("admin:patients_emailoptout_change", "optout_b"),
    ],
)
def test_it_gives_404_for_other_practice_ids(client_a, rows_of_both, url_name, row):
    response = client_a.get(reverse(url_name, args=[rows_of_both[row].pk]))
    assert response.status_code == 404


def test_it_gives_404_for_other_practice_itself(client_a, practice_b):
    assert client_a.get(reverse("admin:patients_practice_change", args=[practice_b.pk])).status_code in (403, 404)


def test_it_cannot_post_changes_to_other_practice_patient(client_a, rows_of_both):
    patient = rows_of_both["patient_b"]
    response = client_a.post(
        reverse("admin:patients_patient_change", args=[patient.pk]),
        {"chart_number": "HACK", "first_name": "X", "last_name": "Y"},
    )
    assert response.status_code == 404
    patient.refresh_from_db()
    assert patient.chart_number != "HACK"


def test_it_hides_practice_choice_for_single_practice_user(client_a, practice_a, practice_b):
    response = client_a.get(reverse("admin:patients_patient_add"))
    form = response.context["adminform"].form
    assert list(form.fields["practice"].queryset) == [practice_a]
    assert form.fields["practice"].widget.is_hidden


def test_it_rejects_a_forged_practice_on_add(client_a, practice_b):
    response = client_a.post(
        reverse("admin:patients_patient_add"),
        {"practice": practice_b.pk, "chart_number": "Z1", "first_name": "Zed"},
    )
    assert response.status_code == 200
    assert "practice" in response.context["adminform"].form.errors
    assert not Patient.objects.filter(chart_number="Z1").exists()


def test_it_adds_a_patient_in_the_only_practice(client_a, practice_a):
    response = client_a.post(
        reverse("admin:patients_patient_add"),
        {"practice": practice_a.pk, "chart_number": "N1", "first_name": " Ann ", "last_name": "Lee", "email": "Ann@Example.COM",
         "preferred_language": "en"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    patient = Patient.objects.get(chart_number="N1")
    assert (patient.practice, patient.first_name, patient.email) == (practice_a, "Ann", "ann@example.com")


def test_it_offers_only_own_practices_in_the_filter(practice_a, practice_b, client):
    from tests.factories import PracticeFactory

    practice_c = PracticeFactory(name="Practice C")
    user = staff_member(practice_a, Role.MANAGER, username="multi")
    Membership.objects.create(user=user, practice=practice_c, role=Role.VIEWER)
    client.force_login(user)
    response = client.get(reverse("admin:patients_patient_changelist"))
    choices = [c["display"] for spec in response.context["cl"].filter_specs if spec.title == "practice" for c in spec.choices(response.context["cl"])]
    assert "Practice A" in choices and "Practice C" in choices
    assert "Practice B" not in choices


def test_it_filters_to_nothing_with_another_practices_id(client_a, rows_of_both, practice_b):
    response = client_a.get(reverse("admin:patients_patient_changelist") + f"?practice__id__exact={practice_b.pk}")
    assert "Bravo" not in response.content.decode()


def test_it_scopes_autocomplete(client_a, rows_of_both):
    response = client_a.get(
        reverse("admin:autocomplete"),
        {"app_label": "patients", "model_name": "emailoptout", "field_name": "practice", "term": ""},
    )
    assert response.status_code == 200
    names = [r["text"] for r in response.json()["results"]]
    assert names == ["Practice A"]


def test_superuser_sees_every_practice(admin_client, rows_of_both):
    content = admin_client.get(reverse("admin:patients_patient_changelist")).content.decode()
    assert "Alpha" in content and "Bravo" in content


def test_search_finds_by_prefix_chart_and_email_and_caps_huge_matches(client_a, practice_a, practice_b, monkeypatch):
    from patients.admin.patients import PatientAdmin

    PatientFactory(practice=practice_a, last_name="Smithers", chart_number="X-1", email="pat@example.com")
    PatientFactory(practice=practice_a, last_name="Jones", chart_number="X-2")
    PatientFactory(practice=practice_b, last_name="Smithson")
    url = reverse("admin:patients_patient_changelist")
    names = lambda q: {p.last_name for p in client_a.get(url, {"q": q}).context["cl"].result_list}  # noqa: E731
    assert names("smi") == {"Smithers"}  # other practice's Smithson never shows
    assert names("x-2") == {"Jones"}
    assert names("x-") == {"Smithers", "Jones"}  # the start of a chart number (CSV-, 0000005)
    assert names("PAT@") == {"Smithers"}
    monkeypatch.setattr(PatientAdmin, "SEARCH_MATCH_CAP", 1)
    PatientFactory(practice=practice_a, last_name="Smith")
    response = client_a.get(url, {"q": "smi"})
    assert len(response.context["cl"].result_list) == 1
    assert "More than 1 patients match" in response.content.decode()
    assert "Type the start of a name" in response.content.decode()
