import pytest
from django.core.management import call_command

from patients.models import EmailOptOut, Membership, Patient, Practice

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_a_realistic_variety(capsys):
    call_command("seed_demo", patients=400)
    out = capsys.readouterr().out
    assert Practice.objects.count() == 2
    assert "manager" in out and "portal-demo-2026" in out
    manager_practices = Membership.objects.filter(user__username="manager").count()
    assert manager_practices == 2
    patients = Patient.objects.all()
    assert patients.count() == 800
    assert patients.filter(email="").exists()
    assert patients.filter(email_consent=False).exists()
    assert patients.filter(deceased=True).exists()
    assert patients.filter(portal_user__isnull=False).exists()
    assert EmailOptOut.objects.exists()
    from invitations.models import Invitation, Status
    from notifications.models import PaymentPlanApplication

    statuses = set(Invitation.objects.values_list("status", flat=True))
    assert statuses >= {Status.ACCEPTED, Status.SENT, Status.EXPIRED, Status.FAILED}
    assert not Invitation.objects.filter(status=Status.ACCEPTED, patient__portal_user__isnull=True).exists()
    assert PaymentPlanApplication.objects.values("status").distinct().count() >= 3
    shared = patients.exclude(email="").values("email").annotate(n=__import__("django.db.models", fromlist=["Count"]).Count("id")).filter(n__gt=1)
    assert shared.exists()


def test_seed_demo_if_empty_is_idempotent(capsys):
    call_command("seed_demo", patients=20)
    call_command("seed_demo", patients=20, if_empty=True)
    assert "already loaded" in capsys.readouterr().out
    assert Patient.objects.count() == 40
