"""Activate Now and the monthly re-invite for children too young for their own account: through each
parent and guardian on file who has not linked their login yet, with every guarantee of a bulk run,
counted in the same units (invitations) and skipped with reasons of their own."""

import pytest

from invitations import eligibility
from invitations.models import (
    EventKind,
    Invitation,
    InvitationEvent,
    Source,
    Status,
    TextStatus,
    hash_token,
)
from patients.models import EmailOptOut
from patients.models.representatives import AccessStatus, Relationship
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory, UserFactory
from tests.family_factories import AccessFactory, RepresentativeFactory, child, teenager
from tests.faults.backends import DyingBackend, WorkerDied
from tests.invitations.bulk_texting import run_now
from tests.invitations.factories import InvitationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


@pytest.fixture
def families_to_invite(practice):
    """Three adults to invite, and children: Sofia and Lucas share a parent (invited, not linked), Ines
    has two (one with no email), Noah none, Mia a parent who linked already, Ana only a caregiver, and a
    teenager (own account possible) with a parent."""
    for _ in range(3):
        PatientFactory(practice=practice)
    parent = RepresentativeFactory(practice=practice, first_name="Elena")
    sofia, lucas = child(practice, first_name="Sofia"), child(practice, first_name="Lucas")
    AccessFactory(patient=sofia, representative=parent)
    AccessFactory(patient=lucas, representative=parent)
    ines = child(practice, first_name="Ines")
    AccessFactory(patient=ines)
    AccessFactory(patient=ines, representative=RepresentativeFactory(practice=practice, email=""))
    noah = child(practice, first_name="Noah")
    AccessFactory(patient=noah, status=AccessStatus.REVOKED)  # no longer on file
    mia = child(practice, first_name="Mia")
    AccessFactory(patient=mia, status=AccessStatus.ACTIVE, linked_at=NOW)
    ana = child(practice, first_name="Ana")
    AccessFactory(patient=ana, relationship=Relationship.CAREGIVER)  # invited from her page, not by a bulk run
    teen = teenager(practice)
    AccessFactory(patient=teen, level="limited")
    return {"parent": parent, "sofia": sofia, "lucas": lucas, "ines": ines, "noah": noah, "mia": mia, "ana": ana, "teen": teen}


def bulk_tally(practice, **options):
    inactive = practice.patients.filter(portal_user__isnull=True)
    children = inactive.filter(eligibility.too_young(NOW))
    return eligibility.tally_bulk(
        inactive, children=children, accesses=eligibility.guardians_to_invite(children), now=NOW,
        plan=eligibility.bulk_plan(practice), **options,
    )


# -- counting -------------------------------------------------------------------------------------------


def test_the_children_are_counted_through_their_parents_in_invitations(practice, families_to_invite, django_assert_max_num_queries):
    PatientFactory(practice=PracticeFactory())  # another practice: never counted
    AccessFactory(patient=child(PracticeFactory()))
    with django_assert_max_num_queries(3):  # the patients by their rules, the children, the parents' accesses
        counted = bulk_tally(practice)
    # Own invitations: the three adults and the teenager (the children are counted through their parents).
    assert counted.eligible == 4
    # Sofia's, Lucas's and Ines's parent with an address; Ines's other parent has none.
    assert counted.representatives == 3
    assert (counted.emails, counted.texts) == (7, 0)
    assert counted.skip_counts["child_no_representative"] == 2  # Noah (revoked only) and Ana (a caregiver only)
    assert counted.skip_counts["representative_linked"] == 1  # Mia
    assert counted.skip_counts["representative_missing_email"] == 1
    assert "child_no_own_account" not in counted.skip_counts or counted.skip_counts["child_no_own_account"] == 0
    # 4 patients, 4 parents' accesses, 3 children with nobody to invite.
    assert counted.considered == 4 + 4 + 3
    preview = counted.preview()
    assert (preview.eligible, preview.representatives, preview.skipped) == (4, 3, 4)
    assert {rule.code for rule, _ in preview.reasons} == {"child_no_representative", "representative_linked", "representative_missing_email"}


def test_a_parent_blocked_by_the_rules_is_skipped_with_their_reason(practice, families_to_invite):
    EmailOptOut.objects.create(practice=practice, email=families_to_invite["parent"].email)
    counted = bulk_tally(practice)
    assert counted.representatives == 1
    assert counted.skip_counts["representative_opted_out"] == 2  # one address, two children's invitations


def test_with_family_access_off_children_are_patients_like_any_other(practice, families_to_invite):
    practice.family_access_enabled = False
    practice.save()
    counted = bulk_tally(practice)
    assert counted.representatives == 0
    assert counted.eligible == 4 + 6  # the children get their own invitations (the chart's address)
    assert counted.skip_counts.get("child_no_representative", 0) == 0


def test_the_child_rule_reads_the_practices_age_band(practice):
    practice.own_account_age = 10
    practice.save()
    eleven = PatientFactory(practice=practice, date_of_birth=NOW.date().replace(year=NOW.year - 11))
    nine = child(practice, date_of_birth=NOW.date().replace(year=NOW.year - 9))
    blocked = set(practice.patients.filter(eligibility.CHILD_NO_REPRESENTATIVE.blocks(NOW)).values_list("pk", flat=True))
    assert blocked == {nine.pk} and eleven.pk not in blocked


# -- creating claimed invitations for representatives, set-based -----------------------------------------


def test_claimed_invitations_for_representatives_are_made_in_one_insert_in_the_patients_language(
    practice, django_assert_max_num_queries
):
    sofia = child(practice, first_name="Sofia", preferred_language="es")
    own = InvitationFactory(patient=sofia, status=Status.EXPIRED)  # from before the practice had family access
    mother, father = AccessFactory(patient=sofia), AccessFactory(patient=sofia)
    rows = [(mother.pk, sofia.pk, "mother@family.example", ""), (father.pk, sofia.pk, "", "+16175550100")]
    with django_assert_max_num_queries(4):  # the invitations, their events, the savepoint around them
        made = Invitation.objects.create_claimed_for_representatives(
            rows, practice=practice, source=Source.BULK, actor_id=None, now=NOW,
            languages={mother.pk: "es", father.pk: "es"}, details={mother.pk: "To Maria P., parent or guardian: "},
        )
    to_mother = Invitation.objects.get(pk=made[mother.pk][0])
    to_father = Invitation.objects.get(pk=made[father.pk][0])
    assert (to_mother.access_id, to_mother.patient_id, to_mother.is_latest, to_mother.language) == (mother.pk, sofia.pk, False, "es")
    assert (to_mother.by_email, to_mother.by_text, to_mother.sending_started_at) == (True, False, NOW)
    assert to_mother.token_hash == hash_token(made[mother.pk][1]) and made[mother.pk][3] is None
    assert (to_father.by_email, to_father.by_text, to_father.text_status, to_father.text_claimed_at) == (False, True, TextStatus.PENDING, NOW)
    assert to_father.text_token_hash == hash_token(made[father.pk][3])
    own.refresh_from_db()
    assert own.is_latest  # the patient's own keep theirs
    created = InvitationEvent.objects.get(invitation=to_mother, kind=EventKind.CREATED)
    assert created.detail == "To Maria P., parent or guardian: Activate Now (by email)"


# -- a whole run ---------------------------------------------------------------------------------------

import datetime  # noqa: E402
import re  # noqa: E402

from django.core import mail  # noqa: E402
from django.urls import reverse  # noqa: E402

from invitations import representatives  # noqa: E402
from invitations.bulk import chunks, runs  # noqa: E402
from invitations.models.bulk_runs import CHUNK_LEASE, BulkRunKind, BulkRunStatus  # noqa: E402
from invitations.wording import representatives as representative_wording  # noqa: E402

LINK = re.compile(r"/invite/([A-Za-z0-9_-]{20,})/")
DAY = datetime.timedelta(days=1)


def emails_to(address: str) -> list:
    return [message for message in mail.outbox if message.to == [address]]


def test_activate_now_invites_each_childs_parents_once_in_chunks_of_their_own(
    practice, families_to_invite, eager_celery, django_capture_on_commit_callbacks
):
    staff = UserFactory()
    other = PracticeFactory()
    AccessFactory(patient=child(other))  # another practice's parent: never this run's
    run = run_now(practice, django_capture_on_commit_callbacks, actor=staff, chunk_size=2)

    assert run.status == BulkRunStatus.DONE
    # 4 patients' own and 3 parents' invitations sent; Ines's second parent (no email), Noah and Ana
    # (nobody on file to invite) and Mia (her parent linked already) skipped with their reasons.
    assert (run.considered, run.targeted, run.invited, run.sent, run.failed) == (11, 7, 7, 7, 0)
    assert run.skip_counts == {"child_no_representative": 2, "representative_linked": 1, "representative_missing_email": 1}
    assert (run.emails_sent, run.texts_sent) == (7, 0)  # the summary per channel is what was sent
    planned = list(run.chunks.order_by("number").values_list("size", "patient_ids", "access_ids"))
    assert [size for size, *_ in planned] == [2, 2, 2, 1]
    assert [bool(patients) for _, patients, _ in planned] == [True, True, False, False]
    assert sorted(pk for *_, accesses in planned for pk in accesses) == sorted(
        access.pk for access in eligibility.guardians_to_invite(practice.patients.filter(eligibility.too_young(NOW)))
        .exclude(representative__email="")
    )

    to_parents = Invitation.objects.to_representatives().filter(practice=practice)
    assert to_parents.count() == 3 and not Invitation.objects.filter(practice=other).exists()
    assert set(to_parents.values_list("status", "source", "created_by", "is_latest", "sent_at")) == {
        (Status.SENT, Source.BULK, staff.pk, False, NOW)
    }
    assert not Invitation.objects.own().filter(patient__in=[families_to_invite["sofia"], families_to_invite["lucas"], families_to_invite["ines"]]).exists()
    assert InvitationEvent.objects.filter(invitation__in=to_parents, kind=EventKind.CREATED).first().detail.startswith("To ")

    # Elena gets one email for each child, in the representative's wording, each with its own link.
    parent = families_to_invite["parent"]
    to_elena = emails_to(parent.email)
    assert len(to_elena) == 2
    bodies = sorted(message.body for message in to_elena)
    assert "for Lucas, as their parent" in " ".join(bodies[0].split()) and "for Sofia, as their parent" in " ".join(bodies[1].split())
    for message in to_elena:
        assert message.subject == "Your patient portal invitation from Maple Street Dental"
        assert message.body.startswith("Hello Elena,")
        assert LINK.search(message.body).group(1) == LINK.search(message.alternatives[0][0]).group(1)
        invitation = Invitation.find_by_token(LINK.search(message.body).group(1))
        assert invitation.access.representative == parent
        assert representatives.link_state(invitation, NOW) == "usable"
        assert message.metadata == {"invitation": str(invitation.public_id)}  # nothing about the patient
    # The accesses wait for the parents to link their login.
    assert set(eligibility.guardians_to_invite(practice.patients.all()).values_list("status", flat=True)) == {AccessStatus.INVITED}


def test_a_second_run_leaves_parents_with_a_link_out_alone(practice, families_to_invite, eager_celery, django_capture_on_commit_callbacks):
    run_now(practice, django_capture_on_commit_callbacks)
    mail.outbox.clear()
    second = run_now(practice, django_capture_on_commit_callbacks)
    assert second.targeted == 0 and mail.outbox == []
    assert second.skip_counts["representative_open_invitation"] == 3


def test_a_chunk_of_parents_delivered_twice_sends_nothing_twice(practice, families_to_invite, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    parents_chunk = run.chunks.exclude(access_ids=[]).get()
    assert chunks.process_chunk(parents_chunk.pk, now=NOW) == "done"
    assert chunks.process_chunk(parents_chunk.pk, now=NOW) == "not-claimed"
    assert len(mail.outbox) == 3


def test_a_worker_dying_half_way_through_the_parents_is_resumed_without_duplicates(
    practice, families_to_invite, settings, monkeypatch, frozen, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(chunks, "MARK_SENT_EVERY_SECONDS", 0)
    settings.PORTAL_SEND_CONCURRENCY = 1
    settings.EMAIL_BACKEND = "tests.faults.backends.DyingBackend"
    DyingBackend.survive = 1
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    parents_chunk = run.chunks.exclude(access_ids=[]).get()
    with pytest.raises(WorkerDied):
        chunks.process_chunk(parents_chunk.pk, now=NOW)
    assert len(mail.outbox) == 1

    DyingBackend.survive = 10**6
    later = NOW + CHUNK_LEASE
    frozen.move_to(later)
    assert chunks.process_chunk(parents_chunk.pk, now=later) == "done"
    to_parents = Invitation.objects.to_representatives()
    assert sorted(m.to[0] for m in mail.outbox) == sorted(to_parents.values_list("email", flat=True))  # each once
    assert to_parents.count() == 3 and set(to_parents.values_list("status", flat=True)) == {Status.SENT}
    # The resumed emails are the representative's, not the patient's.
    assert all(message.body.startswith("Hello Elena,") or "Ines" in message.body for message in mail.outbox)


def test_a_parent_who_can_no_longer_be_invited_when_the_chunk_runs_is_skipped(practice, families_to_invite, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    representatives.revoke(AccessFactory._meta.model.objects.get(patient=families_to_invite["sofia"]), now=NOW)
    for chunk in run.chunks.all():
        chunks.process_chunk(chunk.pk, now=NOW)
    run.refresh_from_db()
    assert (run.targeted, run.sent, run.skipped_at_send, run.status) == (7, 6, 1, BulkRunStatus.DONE)
    assert "Sofia" not in " ".join(message.body for message in mail.outbox)


@pytest.mark.parametrize("first_name", ["Zoë", "Ann <b>& \"Bo\"", "[Registration Link]", ""])
def test_a_parents_email_in_a_chunk_is_the_one_a_single_invite_sends(practice, first_name, django_capture_on_commit_callbacks):
    practice.contact_phone = "(617) 555-0142"
    practice.save()
    sofia = child(practice, first_name=first_name, preferred_language="es")
    access = AccessFactory(patient=sofia)
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    chunks.process_chunk(run.chunks.get().pk, now=NOW)
    [sent] = mail.outbox
    token = LINK.search(sent.body).group(1)
    invitation = Invitation.objects.get(access=access)
    single = representative_wording.build_message(invitation, token)
    assert (sent.subject, sent.body, sent.alternatives, sent.to) == (single.subject, single.body, single.alternatives, single.to)
    assert invitation.language == "es" and "Hola" in sent.body


def test_a_provider_batch_merges_each_parents_patient_and_link(
    practice, families_to_invite, use_provider, eager_celery, django_capture_on_commit_callbacks
):
    standin = use_provider("mailgun")
    run = run_now(practice, django_capture_on_commit_callbacks)
    assert run.sent == 7
    to_elena = [m for m in standin.accepted() if m["to"] == families_to_invite["parent"].email]
    assert sorted(" ".join(m["text"].split())[:97] for m in to_elena) == [
        "Hello Elena, Maple Street Dental invites you to use its patient portal for Lucas, as their parent",
        "Hello Elena, Maple Street Dental invites you to use its patient portal for Sofia, as their parent",
    ]
    for message in to_elena:
        token = LINK.search(message["text"]).group(1)
        assert LINK.search(message["html"]).group(1) == token
        invitation = Invitation.objects.get(token_hash=hash_token(token))
        assert invitation.access.patient.first_name in message["html"]
        assert message["metadata"]["invitation"] == str(invitation.public_id)


# -- the monthly re-invite ------------------------------------------------------------------------------


def test_the_monthly_run_reinvites_parents_whose_link_ran_out_up_to_the_cap(practice, django_capture_on_commit_callbacks):
    practice.monthly_reinvite_enabled = True
    practice.monthly_reinvite_cap = 2
    practice.save()
    ran_out, recent, capped, never = (AccessFactory(patient=child(practice, first_name=name)) for name in ("Ran", "Recent", "Capped", "Never"))
    for access, ages in ((ran_out, [10]), (recent, [3]), (capped, [40, 10])):
        for age in ages:
            Invitation.objects.create_for_representative(
                access=access, email=access.representative.email, status=Status.EXPIRED, token_hash=hash_token(f"{access.pk}-{age}"),
                created_at=NOW - age * DAY, sent_at=NOW - age * DAY, expires_at=NOW - (age - 7) * DAY,
            )
    preview = runs.preview(practice, now=NOW, kind=BulkRunKind.MONTHLY)
    assert (preview.eligible, preview.representatives) == (0, 1)
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW, kind=BulkRunKind.MONTHLY)
    assert run.targeted == 1
    chunks.process_chunk(run.chunks.get().pk, now=NOW)
    assert Invitation.objects.filter(access=ran_out, source=Source.MONTHLY, status=Status.SENT).count() == 1
    assert [m.to for m in mail.outbox] == [[ran_out.representative.email]]
    assert not Invitation.objects.filter(access__in=[recent, capped, never], source=Source.MONTHLY).exists()


def test_a_resend_run_invites_no_parent(practice, families_to_invite, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW, kind=BulkRunKind.RESEND, patient_ids=[families_to_invite["sofia"].pk])
    assert not run.chunks.exclude(access_ids=[]).exists()


# -- the pages ------------------------------------------------------------------------------------------


@pytest.fixture
def maple_manager_client(client, practice):
    from patients.models import Role
    from tests.factories import staff_member

    client.force_login(staff_member(practice, Role.MANAGER, username="manager_maple"))
    return client


def test_activate_nows_page_counts_invitations_via_a_parent_and_children_with_nobody(maple_manager_client, practice, families_to_invite):
    response = maple_manager_client.get(reverse("admin:invitations_portal_activate", args=[practice.pk]))
    page = " ".join(response.content.decode().split())
    assert "4 patients will be invited</strong>, and <strong id=\"via-representatives\">3 invitations via a parent or guardian</strong>" in page
    assert "4 skipped: 2 a child with no parent or guardian on file, 1 a child whose parent or guardian already signs in, " \
           "1 a parent or guardian with no email address." in page
    assert 'value="Yes, invite 4 patients and 3 parents or guardians"' in page
    assert "Confirming sends 7 emails and 0 texts." in page


def test_the_progress_page_names_the_childs_reason(maple_manager_client, practice, families_to_invite, eager_celery, django_capture_on_commit_callbacks):
    run = run_now(practice, django_capture_on_commit_callbacks)
    page = " ".join(maple_manager_client.get(reverse("admin:invitations_bulkrun_progress", args=[run.pk])).content.decode().split())
    assert "2: A child too young for their own account with no parent or guardian on file" in page
    assert "Skipped before the start</th><td id=\"f-skipped_at_plan\">4</td>" in page
    assert '<span id="s-sent">7</span> invitation emails sent' in page


def test_the_dashboard_lists_children_with_nobody_and_its_link_finds_them(maple_manager_client, practice, families_to_invite):
    from invitations import adoption

    other = PracticeFactory()
    child(other)  # another practice's child with nobody: never counted or listed
    figures = adoption.figures(practice, now=NOW)
    assert dict(figures.not_eligible) == {"child_no_representative": 2}
    assert (figures.preview.eligible, figures.preview.representatives) == (4, 3)
    assert adoption.Figures.from_json(figures.to_json()).preview.representatives == 3
    listing = maple_manager_client.get(reverse("admin:patients_patient_changelist") + "?no_invite=child_no_representative")
    assert sorted(p.first_name for p in listing.context["cl"].result_list) == ["Ana", "Noah"]
    # A child without an email address is not among the patients Activate Now skips for that.
    families_to_invite["noah"].email = ""
    families_to_invite["noah"].save()
    listing = maple_manager_client.get(reverse("admin:patients_patient_changelist") + "?no_invite=missing_email")
    assert list(listing.context["cl"].result_list) == []


def test_a_chunk_of_parents_runs_a_bounded_number_of_queries_whatever_its_size(
    practice, django_capture_on_commit_callbacks
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for size in (3, 60):
        place = PracticeFactory()
        for _ in range(size):
            AccessFactory(patient=child(place))
        with django_capture_on_commit_callbacks(execute=False):
            run = runs.start_run(practice=place, now=NOW)
        with CaptureQueriesContext(connection) as captured:
            chunks.process_chunk(run.chunks.get().pk, now=NOW)
        counts.append(len(captured))
    assert counts[0] <= 46 and counts[1] <= counts[0] + 7 * (60 // chunks.MARK_SENT_EVERY_MESSAGES) + 8


# -- texts, and what a later attempt takes over ------------------------------------------------------

from tests.invitations import bulk_texting  # noqa: E402

_twilio_server, twilio, fresh_sms_rate, quiet_twilio = (
    bulk_texting._twilio_server, bulk_texting.twilio, bulk_texting.fresh_sms_rate, bulk_texting.quiet_twilio,
)


def test_parents_are_texted_by_the_practices_bulk_channels_in_their_wording(quiet_twilio, django_capture_on_commit_callbacks):
    practice = bulk_texting.bulk_texting_practice()  # email, then a text for those without a usable email
    by_text = RepresentativeFactory(practice=practice, first_name="Rosa", email="", mobile_phone=bulk_texting.next_mobile(), sms_consent=True)
    AccessFactory(patient=child(practice, first_name="Sofia"), representative=by_text)
    by_email = AccessFactory(patient=child(practice, first_name="Lucas"))
    no_consent = RepresentativeFactory(practice=practice, email="", mobile_phone=bulk_texting.next_mobile(), sms_consent=False)
    AccessFactory(patient=child(practice, first_name="Ines"), representative=no_consent)
    preview = runs.preview(practice, now=NOW)
    assert (preview.representatives, preview.emails, preview.texts) == (2, 1, 1)
    run = bulk_texting.start_held_run(practice, django_capture_on_commit_callbacks)
    bulk_texting.run_until_done(run, capture=django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert (run.sent, run.emails_sent, run.texts_sent, run.status) == (2, 1, 1, BulkRunStatus.DONE)
    assert run.skip_counts == {"representative_missing_email": 1, "representative_no_sms_consent": 1}
    [text] = quiet_twilio.accepted()
    assert text["to"] == by_text.mobile_phone
    assert text["body"].startswith("Maple Street Dental: set up portal access for Sofia: ")
    invitation = Invitation.find_by_token(bulk_texting.token_of(text))
    assert invitation.access.representative == by_text and invitation.text_status == TextStatus.QUEUED
    assert [m.to for m in mail.outbox] == [[by_email.representative.email]]


def test_what_an_attempt_handed_on_is_sent_by_the_next_in_the_representatives_wording(
    practice, monkeypatch, quiet_twilio, django_capture_on_commit_callbacks
):
    practice.text_invitations_enabled = True
    practice.bulk_channels = "both"
    practice.save()
    parent = RepresentativeFactory(practice=practice, first_name="Elena", mobile_phone=bulk_texting.next_mobile(), sms_consent=True)
    access = AccessFactory(patient=child(practice, first_name="Sofia"), representative=parent)
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    chunk = run.chunks.get()
    monkeypatch.setattr(chunks, "SEND_SECONDS", 0)  # the first attempt's time is up before it sends anything
    with django_capture_on_commit_callbacks(execute=False):
        assert chunks.process_chunk(chunk.pk, now=NOW) == "continued"
    assert mail.outbox == [] and quiet_twilio.accepted() == []
    monkeypatch.setattr(chunks, "SEND_SECONDS", 60)
    with django_capture_on_commit_callbacks(execute=False):
        assert chunks.process_chunk(chunk.pk, now=NOW) == "done"
    [email] = mail.outbox
    [text] = quiet_twilio.accepted()
    assert email.body.startswith("Hello Elena,") and "for Sofia, as their parent" in " ".join(email.body.split())
    assert text["body"].startswith("Maple Street Dental: set up portal access for Sofia: ")
    invitation = Invitation.objects.get(access=access)
    assert Invitation.find_by_token(LINK.search(email.body).group(1)) == invitation
    assert Invitation.find_by_token(bulk_texting.token_of(text)) == invitation
    assert (invitation.status, invitation.text_status) == (Status.SENT, TextStatus.QUEUED)
