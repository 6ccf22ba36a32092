"""The Content-Security-Policy every page is served with, and the pages that run script under it."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.parametrize("url", ["/admin/login/", "/portal/login/", "/invite/not-a-token-at-all/"])
def test_public_and_staff_pages_carry_the_policy(client, url):
    directives = policy(client.get(url))
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["form-action"] == ["'self'"]


def test_the_progress_pages_script_runs_under_its_nonce(client, practice_a):
    from invitations.bulk import runs
    from patients.models import Role
    from tests.factories import staff_member

    manager = staff_member(practice_a, Role.MANAGER, username="manager_csp")
    client.force_login(manager)
    run = runs.start_run(practice=practice_a, now=timezone.now(), plan_later=True)
    response = client.get(reverse("admin:invitations_bulkrun_progress", args=[run.pk]))
    nonce = re.search(r"<script nonce=\"([^\"]+)\">", response.content.decode()).group(1)
    assert f"'nonce-{nonce}'" in policy(response)["script-src"]
    assert 'onchange="' not in response.content.decode() and "onclick=" not in response.content.decode()
