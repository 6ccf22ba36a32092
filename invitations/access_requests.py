"""A patient asking for portal access on the practice's public page (when self sign-up is on):
matched to a chart and invited, or a new chart flagged "self sign-up, unverified"."""

import datetime
import logging
import secrets

from django.db import transaction

from patients.models import Patient, Practice, normalise_email

from .models import Source
from .services import invite, normalise_name

logger = logging.getLogger(__name__)


def _find_requesting_patient(practice: Practice, *, first_name: str, last_name: str, date_of_birth, email: str):
    candidates = [
        p
        for p in Patient.objects.filter(practice=practice, date_of_birth=date_of_birth, email=normalise_email(email))
        if normalise_name(p.last_name) == normalise_name(last_name)
    ]
    if len(candidates) > 1:  # e.g. twins sharing the family address
        candidates = [p for p in candidates if normalise_name(p.first_name) == normalise_name(first_name)]
    return candidates[0] if len(candidates) == 1 else (None if not candidates else False)


def request_access(
    *,
    practice: Practice,
    first_name: str,
    last_name: str,
    date_of_birth: datetime.date,
    email: str,
    zip_code: str,
    birth_sex: str,
    now: datetime.datetime,
) -> str:
    """Handle a "Request portal access" form. Returns what happened, for logs and tests only:
    the page says the same thing whatever this returns.

    A chart matching last name, date of birth and email is invited at the address on file;
    with no match a new chart flagged "self sign-up, unverified" is created and invited.
    """
    match = _find_requesting_patient(
        practice, first_name=first_name, last_name=last_name, date_of_birth=date_of_birth, email=email
    )
    if match is False:
        logger.info("access request for practice %s matched several charts; nothing sent", practice.pk)
        return "ambiguous"
    if match is not None:
        if match.has_portal_account:
            return "already-registered"
        outcome = invite(match, now=now, source=Source.SELF_SIGNUP)
        return "matched" if outcome.created else "matched-not-eligible"
    with transaction.atomic():
        patient = Patient.objects.create(
            practice=practice,
            chart_number=f"WEB-{secrets.token_hex(5).upper()}",
            first_name=first_name,
            last_name=last_name,
            date_of_birth=date_of_birth,
            email=normalise_email(email),
            zip_code=zip_code,
            birth_sex=birth_sex,
            # They typed the address and asked us to email it.
            email_consent=True,
            self_signup_unverified=True,
        )
        outcome = invite(patient, now=now, source=Source.SELF_SIGNUP)
    return "created" if outcome.created else "created-not-eligible"


