"""The admin home page starts from the portal, titled for the user's role."""

import pytest
from django.urls import reverse

from patients.models import Membership, Role
from tests.factories import PracticeFactory, staff_member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "role,title,manages",
    [
        (Role.ADMIN, "Practice administration", True),
        (Role.MANAGER, "Practice management", True),
        (Role.FRONT_DESK, "Front desk", False),
        (Role.VIEWER, "Overview (view only)", False),
    ],
)
def test_the_home_page_names_the_role_and_starts_from_the_portal(client, practice_a, practice_b, role, title, manages):
    user = staff_member(practice_a, role, username=f"home_{role}")
    client.force_login(user)
    content = client.get(reverse("admin:index")).content.decode()
    assert f"<h1>{title}</h1>" in content
    assert content.count("<h1>") == 1  # one title: the viewer is never greeted as the front desk
    assert reverse("admin:invitations_portal_dashboard", args=[practice_a.pk]) in content
    assert practice_b.name not in content  # another practice is never listed
    assert (reverse("admin:invitations_portal_activate", args=[practice_a.pk]) in content) is manages
    assert ("Add a patient" in content) is (role != Role.VIEWER)


def test_a_member_of_two_offices_gets_both_and_the_senior_title(client, practice_a, practice_b):
    user = staff_member(practice_a, Role.FRONT_DESK, username="two_roles")
    Membership.objects.create(user=user, practice=practice_b, role=Role.MANAGER)
    client.force_login(user)
    content = client.get(reverse("admin:index")).content.decode()
    assert "<h1>Practice management</h1>" in content
    assert reverse("admin:invitations_portal_activate", args=[practice_b.pk]) in content
    assert reverse("admin:invitations_portal_activate", args=[practice_a.pk]) not in content


def test_a_superuser_sees_administration(admin_client, practice_a):
    content = admin_client.get(reverse("admin:index")).content.decode()
    assert "<h1>Administration</h1>" in content and practice_a.name in content
