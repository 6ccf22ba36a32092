import re

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.phones import normalise_phone
from invitations.eligibility import bulk_plan, eligible
from invitations.models import Channel, EventKind, Invitation, InvitationEvent, InvitationTemplate, Status, TextStatus
from patients.models import BulkChannels, EmailOptOut, Membership, Patient, Practice, SmsOptOut, SmsOptOutReason

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_a_realistic_variety(capsys):
    call_command("seed_demo", patients=400)
    out = capsys.readouterr().out
    assert Practice.objects.count() == 2
    assert "manager" in out and "portal-demo-2026" in out
    manager_practices = Membership.objects.filter(user__username="manager").count()
    assert manager_practices == 2
    patients = Patient.objects.all()
    assert patients.exclude(chart_number__contains="-F").count() == 800  # and the families (charts 01-F011...)
    for practice in Practice.objects.all():  # Spanish speakers at both practices
        assert 0.15 < practice.patients.filter(preferred_language="es").count() / practice.patients.count() < 0.25
    riverside = Practice.objects.get(name="Riverside Aesthetics")  # its own English email, no Spanish one yet
    assert InvitationTemplate.falls_back(riverside, "es") and not InvitationTemplate.falls_back(Practice.objects.exclude(pk=riverside.pk).get(), "es")
    assert patients.filter(email="").exists()
    assert patients.filter(email_consent=False).exists()
    assert patients.filter(deceased=True).exists()
    assert patients.filter(portal_user__isnull=False).exists()
    assert EmailOptOut.objects.exists()
    from invitations.models import Invitation, Status
    from notifications.models import PaymentPlanApplication

    statuses = set(Invitation.objects.values_list("status", flat=True))
    assert statuses >= {Status.ACCEPTED, Status.SENT, Status.EXPIRED, Status.FAILED}
    assert not Invitation.objects.own().filter(status=Status.ACCEPTED, patient__portal_user__isnull=True).exists()
    # A representative's accepted link linked their own login.
    assert not Invitation.objects.to_representatives().filter(status=Status.ACCEPTED).exclude(access__status="active").exists()
    assert PaymentPlanApplication.objects.values("status").distinct().count() >= 3
    shared = patients.exclude(email="").values("email").annotate(n=__import__("django.db.models", fromlist=["Count"]).Count("id")).filter(n__gt=1)
    assert shared.exists()


def test_seed_demo_if_empty_is_idempotent(capsys):
    call_command("seed_demo", patients=20)
    call_command("seed_demo", patients=20, if_empty=True)
    assert "already loaded" in capsys.readouterr().out
    assert Patient.objects.exclude(chart_number__contains="-F").count() == 40


def test_seed_demo_has_a_practice_that_texts_its_patients(capsys):
    call_command("seed_demo", patients=400)
    maple, riverside = Practice.objects.get(name="Maple Street Dental"), Practice.objects.get(name="Riverside Aesthetics")
    assert (maple.text_invitations_enabled, maple.bulk_channels) == (True, BulkChannels.EMAIL_THEN_TEXT)
    assert (riverside.text_invitations_enabled, riverside.bulk_channels) == (False, BulkChannels.EMAIL)
    assert not riverside.patients.exclude(mobile_phone="").exists()

    patients = maple.patients.all()
    mobiles = set(patients.exclude(mobile_phone="").values_list("mobile_phone", flat=True))
    assert len(mobiles) > 50
    # Fictional numbers only (555-0100 to 555-0199), stored as the phone checks store them.
    assert all(re.fullmatch(r"\+1\d{3}55501\d\d", number) and normalise_phone(number, "US") == number for number in mobiles)
    assert patients.filter(mobile_phone="", email="").count() == 0  # every patient without an email has a mobile
    assert patients.exclude(mobile_phone="").filter(sms_consent=False).exists()

    consented = patients.filter(sms_consent=True)
    assert consented.filter(email="").exists() and consented.exclude(email="").exists()
    assert not consented.filter(sms_consent_changed_at__isnull=True).exists()
    assert set(consented.values_list("sms_consent_changed_by__username", flat=True)) == {"frontdesk"}
    assert not patients.filter(sms_consent=False, sms_consent_changed_at__isnull=False).exists()

    # Activate Now has texts to send: patients without an email get one.
    now = timezone.now()
    to_invite = eligible(patients, now=now, plan=bulk_plan(maple))
    assert to_invite.filter(gets_text=True, gets_email=False, email="").exists()
    assert to_invite.filter(gets_email=True, gets_text=False).exists()
    assert not eligible(riverside.patients.all(), now=now, plan=bulk_plan(riverside)).filter(gets_text=True).exists()

    texts = Invitation.objects.filter(practice=maple, by_text=True)
    assert set(texts.values_list("text_status", flat=True)) == {TextStatus.DELIVERED, TextStatus.UNDELIVERED}
    assert texts.filter(by_email=False, status=Status.SENT).exists()
    assert texts.filter(by_email=False, status=Status.EXPIRED).exists()
    assert texts.filter(status=Status.FAILED, text_status=TextStatus.UNDELIVERED).exists()
    assert not texts.filter(status=Status.FAILED).exclude(patient__undeliverable_mobile__gt="").exists()
    assert texts.filter(status=Status.ACCEPTED, accepted_via=Channel.TEXT, patient__portal_user__isnull=False).exists()
    assert not texts.exclude(text_to__regex=r"^\+1\d{3}55501\d\d$").exists()
    assert not Invitation.objects.filter(status=Status.ACCEPTED, accepted_via="").exists()
    assert not Invitation.objects.filter(practice=riverside, by_text=True).exists()
    kinds = set(InvitationEvent.objects.filter(invitation__in=texts).values_list("kind", flat=True))
    assert kinds >= {EventKind.TEXT_QUEUED, EventKind.TEXT_SENT, EventKind.TEXT_DELIVERED, EventKind.TEXT_UNDELIVERED}

    stopped = SmsOptOut.objects.filter(practice=maple, reason=SmsOptOutReason.STOP_REPLY)
    assert stopped.exists() and not SmsOptOut.objects.filter(practice=riverside).exists()
    assert not texts.filter(status__in=[Status.PENDING, Status.SENT], text_to__in=stopped.values("phone")).exists()
    assert "by text only" in capsys.readouterr().out


def test_the_demos_alerts_wait_on_the_bulk_queue_and_its_patients_are_found_as_the_search_help_says(
    monkeypatch, django_capture_on_commit_callbacks
):
    """A fresh demo's dozens of alert emails go to the bulk queue, so the first invitation someone
    sends is not "Being sent" behind them; the search help's examples find demo patients."""
    from core import queue

    sent = []
    monkeypatch.setattr(queue, "publish", lambda task, args, countdown=0, **options: sent.append((task, options.get("queue"))))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", patients=300)
    alerts = [where for task, where in sent if task == "notifications.send_delivery"]
    assert alerts and set(alerts) == {queue.BULK_QUEUE}
    garcias = Patient.objects.filter(last_name="García")
    assert garcias.exists()
    assert set(Patient.objects.search("Garcia")) >= set(garcias)
    chart = f"{Practice.objects.order_by('pk').first().pk:02d}-0000005"  # 01-0000005 in a fresh demo
    for example in ("5", "0000005", chart):
        assert Patient.objects.search(example).filter(chart_number=chart).exists(), example


def test_seed_demo_has_families_at_both_practices_and_a_parent_who_switches_between_two_children(client, capsys):
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    from demo.management.commands.seed_demo import FAMILIES, PATIENT_PASSWORD
    from invitations import representatives
    from patients.audit import AuditAction, AuditEntry
    from patients.models import AgeBand
    from patients.models.representatives import AccessLevel, AccessStatus, Relationship, RepresentativeAccess

    call_command("seed_demo", patients=60)
    out = capsys.readouterr().out
    now = timezone.now()
    for practice in Practice.objects.all():
        today = practice.today(now)
        accesses = RepresentativeAccess.objects.filter(practice=practice).select_related("patient", "representative")
        # Siblings sharing a parent: two linked to the parent's own login, one invited with a link out.
        shared = [a for a in accesses if a.representative.accesses.count() > 1]
        assert {a.status for a in shared} == {AccessStatus.ACTIVE, AccessStatus.INVITED}
        assert len({a.representative_id for a in shared}) == 1
        invited = next(a for a in shared if a.status == AccessStatus.INVITED)
        assert Invitation.objects.open().filter(access=invited).exists()
        assert all(a.representative.portal_user_id for a in shared)
        # A teenager with their own account and a parent with limited access.
        teen = next(a for a in accesses if practice.age_band(a.patient.date_of_birth, today) == AgeBand.TEEN)
        assert (teen.level, teen.status, teen.patient.portal_user_id is not None) == (AccessLevel.LIMITED, AccessStatus.ACTIVE, True)
        assert teen.patient.email != teen.representative.email  # the teenager's own address, not the parent's
        # An adult with a caregiver whose access ends on a date.
        caregiver = accesses.get(relationship=Relationship.CAREGIVER)
        assert caregiver.ends_at > now and caregiver.granted_by_patient and caregiver.status == AccessStatus.ACTIVE
        # A child with no parent or guardian on file, and many children with one not invited yet.
        young = Patient.objects.filter(practice=practice, portal_user__isnull=True, chart_number__contains="-F")
        orphans = [p for p in young if practice.age_band(p.date_of_birth, today) == AgeBand.CHILD and not p.representative_accesses.exists()]
        assert len(orphans) == 1
        assert accesses.filter(status=AccessStatus.INVITED, patient__invitations__isnull=True).exists()
        # Every grant is in the audit trail.
        assert AuditEntry.objects.filter(practice=practice, action=AuditAction.REPRESENTATIVE_GRANTED).count() >= 4
    assert sum(len(families) for families in FAMILIES.values()) == 8

    # The parent's login opens both linked children and switches between them.
    elena = get_user_model().objects.get(username="elena.garcia")
    assert [record.patient.first_name for record in representatives.records_of(elena, now=now)] == ["Lucas", "Sofia"]
    assert "elena.garcia" in out and "Sofia, Lucas" in out
    response = client.post(reverse("portal:login"), {"username": "elena.garcia", "password": PATIENT_PASSWORD})
    assert response.status_code == 302
    home = client.get(reverse("portal:home")).content.decode()
    assert 'name="patient"' in home and "Sofia" in home and "Lucas" in home
    sofia = Patient.objects.get(first_name="Sofia", last_name="Garcia")
    assert client.post(reverse("portal:switch"), {"patient": sofia.pk}).status_code == 302
    assert "Sofia's portal" in client.get(reverse("portal:home")).content.decode()

    # Made again (the command run once more), the families are not duplicated and the child with no
    # parent on file keeps none.
    import random

    from demo.management.commands.seed_demo import Command

    maple = Practice.objects.get(name="Maple Street Dental")
    assert Command()._create_families(maple, FAMILIES[0]) == 0
    Command()._give_children_parents(maple, random.Random(1))
    assert Patient.objects.filter(first_name="Sofia", last_name="Garcia").count() == 1
    assert not Patient.objects.get(first_name="Noah", last_name="Kim").representative_accesses.exists()
