"""A bulk run's invitations to the parents and guardians of children too young for their own account
(`eligibility.guardians_to_invite`): a chunk's accesses are locked, checked again by a
representative's rules under the run's plan, and their invitations created claimed in one INSERT
(`Invitation.objects.create_claimed_for_representatives`), as `invitations.bulk.chunks` does the
patients' own; the chunk then sends, records and hands on both alike. Each email and text is in
the representative's wording (`invitations.wording.representatives`), in the patient's language.
"""

import datetime

from django.db import transaction

from core.sending.transports import Item
from core.sending.transports import text as text_transport
from patients.models import normalise_email
from patients.models.representatives import Relationship, Representative, RepresentativeAccess

from invitations import eligibility
from invitations.models import Invitation
from invitations.texts import delivery
from invitations.wording import representatives as wording
from invitations.wording.invitation_email import Recipient


def create_invitations(
    chunk, *, plan: str, source: str, already_invited, now: datetime.datetime,
) -> tuple[list[Recipient], list[Item]]:
    """Create and claim the invitations of the chunk's accesses (`chunk.access_ids`) that the rules
    allow now, except those this run invited on an earlier attempt (`already_invited`: the run's
    invitations of the chunk). Returns the emails and the texts to send."""
    run, practice = chunk.run, chunk.run.practice
    ids = chunk.access_ids
    if not ids:
        return [], []
    with transaction.atomic():
        # The lock a single invite of a representative takes (`invitations.representatives.invite`),
        # so the two cannot both invite one access.
        list(RepresentativeAccess.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))
        # Links that ran out unmarked still hold the "one open invitation per access" constraint.
        Invitation.objects.filter(access_id__in=ids).expire_due(now, batch_size=len(ids) + 1)
        accesses = RepresentativeAccess.objects.filter(pk__in=ids, practice_id=practice.pk)
        if chunk.attempts > 1:
            # One invitation per access per run, whatever the rules say on a later attempt.
            accesses = accesses.exclude(pk__in=already_invited.filter(access__isnull=False).values("access_id"))
        rows = [
            (pk, patient_id, patient_first_name or "", language, first, last, normalise_email(email) if by_email else "",
             mobile if by_text else "", relationship)
            for pk, patient_id, patient_first_name, language, first, last, email, mobile, relationship, by_email, by_text
            in eligibility.eligible_representatives(accesses, now=now, plan=plan).values_list(
                "pk", "patient_id", "patient__first_name", "patient__preferred_language", "representative__first_name",
                "representative__last_name", "representative__email", "representative__mobile_phone", "relationship",
                "gets_email", "gets_text",
            )
        ]
        if not rows:
            return [], []
        made = Invitation.objects.create_claimed_for_representatives(
            [(pk, patient_id, email, mobile) for pk, patient_id, _name, _language, _first, _last, email, mobile, _rel in rows],
            practice=practice, source=source, actor_id=run.started_by_id, now=now,
            languages={row[0]: row[3] for row in rows},
            # The timeline names whom it went to, as a single invite of a representative does.
            details={
                pk: f"To {Representative(first_name=first, last_name=last)}, {Relationship(relationship).label.lower()}: "
                for pk, _patient_id, _name, _language, first, last, _email, _mobile, relationship in rows
            },
        )
    expires_at = practice.link_expires_at(now)
    emails, texts = [], []
    for pk, _patient_id, patient_first_name, language, first, _last, email, mobile, _relationship in rows:
        invitation_id, token, public_id, text_token = made[pk]
        if email:
            emails.append(Recipient(
                invitation_id, email, first, token, public_id, expires_at, language, patient_first_name=patient_first_name,
            ))
        if mobile:
            invitation = Invitation(pk=invitation_id, public_id=public_id, text_to=mobile, language=language)
            texts.append(text_item(invitation, text_token, practice=practice, patient_first_name=patient_first_name))
    return emails, texts


def text_item(invitation: Invitation, token: str, *, practice, patient_first_name: str) -> Item:
    """The text of one claimed invitation to a representative, with the text's own link."""
    body = wording.text_for_chunk(practice, patient_first_name=patient_first_name, language=invitation.language, token=token)
    return Item(key=invitation.pk, to=invitation.text_to, payload=text_transport.Text(body, delivery.status_callback_url(invitation)))


def recipient(invitation: Invitation, token: str) -> Recipient:
    """The email of an invitation to a representative that a later attempt claimed again (its
    `access__representative` and `patient` loaded)."""
    return Recipient(
        invitation.pk, invitation.email, invitation.access.representative.first_name, token, invitation.public_id,
        invitation.expires_at, invitation.language, patient_first_name=invitation.patient.first_name or "",
    )
