"""The per-channel rules agree wherever they are asked: for a patient not saved yet (the add form),
for one saved patient, and counted over a practice (Activate Now's preview)."""

import pytest

from invitations import eligibility
from invitations.eligibility import Plan
from patients.models import Patient, SmsOptOut
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db

MOBILE = "+16175550123"
CASES = [
    {}, {"email": ""}, {"email_consent": False}, {"mobile_phone": ""}, {"sms_consent": False},
    {"mobile_phone": "+16175550199"},  # on the opt-out list
    {"email": "", "sms_consent": False}, {"email": "", "mobile_phone": ""}, {"deceased": True},
    {"email": "", "first_name": ""},
]


@pytest.fixture
def practice_with_an_opted_out_number():
    practice = PracticeFactory(text_invitations_enabled=True)
    SmsOptOut.objects.create(practice=practice, phone="+16175550199")
    return practice


def _patient(practice, **fields):
    return PatientFactory.build(practice=practice, **{"mobile_phone": MOBILE, "sms_consent": True, **fields})


@pytest.mark.parametrize("plan", list(Plan))
@pytest.mark.parametrize("fields", CASES)
@pytest.mark.parametrize("texts_on", [True, False])
def test_an_unsaved_patient_and_a_saved_one_get_the_same_channels_and_reasons(practice_with_an_opted_out_number, plan, fields, texts_on):
    practice_with_an_opted_out_number.text_invitations_enabled = texts_on
    practice_with_an_opted_out_number.save()
    unsaved = _patient(practice_with_an_opted_out_number, **fields)
    before = eligibility.decide_before_saving(unsaved, plan=plan)
    unsaved.save()
    after = eligibility.channels_for(unsaved, now=NOW, plan=plan)
    assert (before.channels, [r.code for r in before.reasons]) == (after.channels, [r.code for r in after.reasons])


@pytest.mark.parametrize("plan", [Plan.AUTO, Plan.EACH, Plan.EMAIL, Plan.TEXT, Plan.BOTH])
def test_a_practices_counts_agree_with_each_patients_decision(practice_with_an_opted_out_number, plan):
    patients = [_patient(practice_with_an_opted_out_number, chart_number=f"K{n}", **fields) for n, fields in enumerate(CASES)]
    for patient in patients:
        patient.save()
    decisions = [eligibility.channels_for(p, now=NOW, plan=plan) for p in patients]
    counted = eligibility.tally(Patient.objects.filter(practice=practice_with_an_opted_out_number), now=NOW, plan=plan)
    assert counted.eligible == sum(1 for d in decisions if d.channels)
    assert counted.emails == sum(1 for d in decisions if d.by_email)
    assert counted.texts == sum(1 for d in decisions if d.by_text)
    listed = eligibility.eligible(Patient.objects.filter(practice=practice_with_an_opted_out_number), now=NOW, plan=plan)
    by_row = {p.pk: (p.gets_email, p.gets_text) for p in listed}
    assert by_row == {p.pk: (d.by_email, d.by_text) for p, d in zip(patients, decisions) if d.channels}
