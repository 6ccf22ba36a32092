"""Every registered ModelAdmin answers hostile list parameters and action ids with a 4xx or an empty
list, never a 500: a NUL in a filter, a year of eleven digits, ids that are not numbers.

The filters are read from each change list itself (each filter's expected parameters, the date
hierarchy, every date field's year/month/day lookups), so a filter added later is covered too.
"""

import pytest
from django.contrib import admin
from django.contrib.admin import helpers
from django.db import models
from django.test import RequestFactory

from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

HOSTILE_VALUES = ["\x00", "99999999999", "99999999999999999999999", "abc", ""]
OK_STATUSES = {200, 400, 404}


def registered_admins():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


ADMINS = [pytest.param(model_admin, id=model._meta.label) for model, model_admin in registered_admins()]


def list_parameters(model_admin, superuser) -> set[str]:
    request = RequestFactory().get("/")
    request.user = superuser
    names = set()
    changelist = model_admin.get_changelist_instance(request)
    for spec in changelist.filter_specs:
        names.update(spec.expected_parameters())
    date_fields = [f.name for f in model_admin.model._meta.get_fields() if isinstance(f, (models.DateField, models.DateTimeField))]
    if model_admin.date_hierarchy:
        date_fields.append(model_admin.date_hierarchy)
    for name in date_fields:
        names.update(f"{name}__{part}" for part in ("year", "month", "day", "gte", "lt", "exact"))
    names.update({"q", "p", "o", "id", "pk", "id__in", "practice__id__exact", "_facets"})
    return names


def changelist_url(model_admin) -> str:
    opts = model_admin.model._meta
    return f"/admin/{opts.app_label}/{opts.model_name}/"


@pytest.fixture
def some_rows(practice_a):
    PatientFactory(practice=practice_a)


@pytest.mark.parametrize("model_admin", ADMINS)
def test_hostile_list_parameters_never_fail(model_admin, admin_client, admin_user, some_rows):
    url = changelist_url(model_admin)
    failures = []
    for name in sorted(list_parameters(model_admin, admin_user)):
        for value in HOSTILE_VALUES:
            response = admin_client.get(url, {name: value}, follow=True)
            if response.status_code not in OK_STATUSES:
                failures.append((name, value, response.status_code))
    assert failures == []


@pytest.mark.parametrize("model_admin", ADMINS)
def test_hostile_action_ids_never_fail(model_admin, admin_client, admin_user, some_rows):
    request = RequestFactory().get("/")
    request.user = admin_user
    url = changelist_url(model_admin)
    failures = []
    for action in model_admin.get_actions(request):
        for value in ["abc", "\x00", "99999999999999999999999", "-1", "1.5"]:
            response = admin_client.post(url, {"action": action, helpers.ACTION_CHECKBOX_NAME: [value], "index": "x"})
            if response.status_code not in OK_STATUSES | {302}:
                failures.append((action, value, response.status_code))
    assert failures == []


def test_a_nul_anywhere_in_a_query_string_is_a_400_with_a_reason(client_a):
    response = client_a.get("/admin/patients/patient/", {"birth_sex__exact": "\x00"})
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_an_eleven_digit_year_is_a_400_that_says_what_to_do(client_a):
    response = client_a.get("/admin/patients/patient/", {"created_at__year": "99999999999"})
    assert response.status_code == 400
    assert "Show the whole list" in response.content.decode()


def test_non_numeric_selected_ids_are_a_400_and_touch_nothing(client_a, front_desk_a, practice_a):
    from patients.audit import AuditEntry

    patient = PatientFactory(practice=practice_a)
    request = RequestFactory().get("/")
    request.user = front_desk_a
    for action in admin.site.get_model_admin(type(patient)).get_actions(request):
        response = client_a.post("/admin/patients/patient/", {"action": action, helpers.ACTION_CHECKBOX_NAME: [str(patient.pk), "abc"]})
        assert response.status_code == 400, action
        assert "must be row ids" in response.content.decode()
    assert not AuditEntry.objects.exists()
