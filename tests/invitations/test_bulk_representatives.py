"""Activate Now and the monthly re-invite for children too young for their own account: through each
parent and guardian on file who has not linked their login yet, with every guarantee of a bulk run,
counted in the same units (invitations) and skipped with reasons of their own."""

import pytest

from invitations import eligibility
from invitations.models import EventKind, Invitation, InvitationEvent, Source, Status, TextStatus, hash_token
from patients.models import EmailOptOut
from patients.representatives import AccessStatus, Relationship
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory, UserFactory
from tests.family_factories import AccessFactory, RepresentativeFactory, child, teenager
from tests.invitations.factories import InvitationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


@pytest.fixture
def practice():
    return PracticeFactory(name="Maple Street Dental")


@pytest.fixture
def family(practice):
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


def test_the_children_are_counted_through_their_parents_in_invitations(practice, family, django_assert_max_num_queries):
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


def test_a_parent_blocked_by_the_rules_is_skipped_with_their_reason(practice, family):
    EmailOptOut.objects.create(practice=practice, email=family["parent"].email)
    counted = bulk_tally(practice)
    assert counted.representatives == 1
    assert counted.skip_counts["representative_opted_out"] == 2  # one address, two children's invitations


def test_with_family_access_off_children_are_patients_like_any_other(practice, family):
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
