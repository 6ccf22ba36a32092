"""The same rules for a patient about to be created (the add form's "Send portal invitation")."""

import re

from django.utils import timezone

from patients.models import E164_SHAPE, AgeBand, EmailOptOut, Patient, SmsOptOut

from invitations.eligibility.plans import Decision, Plan, _decide
from invitations.eligibility.rules import EMAIL_SHAPE, Reason


#: Where each rule's fix goes on the patient form (rules about the practice have no field).
RULE_FIELDS = {
    "missing_first_name": "first_name", "missing_last_name": "last_name", "missing_date_of_birth": "date_of_birth",
    "missing_zip_code": "zip_code", "missing_email": "email", "missing_birth_sex": "birth_sex",
    "invalid_email": "email", "no_consent": "email_consent", "opted_out": "email", "deceased": "deceased",
    "missing_mobile": "mobile_phone", "invalid_mobile": "mobile_phone", "no_sms_consent": "sms_consent",
    "sms_opted_out": "mobile_phone",
}
#: What the add form marks as needed for an invitation (the fields the rules above read).
NEEDED_FOR_INVITATION = ("first_name", "last_name", "date_of_birth", "zip_code", "email", "birth_sex", "email_consent")
#: ...and for one by text.
NEEDED_FOR_TEXT = ("mobile_phone", "sms_consent")


def decide_before_saving(patient: Patient, *, plan: str = Plan.AUTO) -> Decision:
    """The same rules as `channels_for`, for a patient about to be created: the rules that can
    only hold for a saved patient (registered, open or recent invitations, a bounce on file)
    cannot block a new one; the others read the same fields and tables. `tests/invitations/
    test_eligibility.py` checks the two agree."""
    practice = patient.practice
    email = (patient.email or "").strip()
    mobile = (patient.mobile_phone or "").strip()
    blocked = {
        "invitations_disabled": not practice.invitations_enabled,
        "activation_email_disabled": not practice.activation_email_enabled,
        "deceased": bool(patient.deceased),
        # The SQL rule reads the UTC date too (`rules.younger_than`), so the two always agree.
        "child_no_own_account": practice.age_band(patient.date_of_birth, timezone.now().date()) == AgeBand.CHILD,
        "email_is_representatives": False,  # a patient not saved yet has no representatives
        "mobile_is_representatives": False,
        "missing_first_name": not patient.first_name,
        "missing_last_name": not patient.last_name,
        "missing_date_of_birth": patient.date_of_birth is None,
        "missing_zip_code": not patient.zip_code,
        "missing_email": not email,
        "missing_birth_sex": not patient.birth_sex,
        "invalid_email": bool(email) and not re.match(EMAIL_SHAPE, email),
        "no_consent": not patient.email_consent,
        "opted_out": bool(email) and EmailOptOut.objects.filter(practice_id=practice.pk, email=email).exists(),
        "texts_disabled": not practice.text_invitations_enabled,
        "missing_mobile": not mobile,
        "invalid_mobile": bool(mobile) and not re.match(E164_SHAPE, mobile),
        "no_sms_consent": not patient.sms_consent,
        "sms_opted_out": bool(mobile) and SmsOptOut.objects.filter(practice_id=practice.pk, phone=mobile).exists(),
    }
    return _decide(blocked, plan, texts_enabled=practice.text_invitations_enabled, for_resend=False)


def reasons_before_saving(patient: Patient, *, plan: str = Plan.AUTO) -> list[Reason]:
    return decide_before_saving(patient, plan=plan).reasons
