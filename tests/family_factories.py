"""Test data for family and caregiver access: representatives and their access to patients, and
patients of each age band at tests.clock.NOW (2 March 2026)."""

import datetime
import itertools

import factory

from patients.models.representatives import AccessLevel, AccessStatus, Relationship, Representative, RepresentativeAccess
from tests.factories import PatientFactory

_n = itertools.count()


def born_years_before(years: int, *, days: int = 0) -> datetime.date:
    """A date of birth `years` years before 2 March 2026 (and `days` more: -1 is a day later)."""
    return datetime.date(2026 - years, 3, 2) - datetime.timedelta(days=days)


def child(practice, **fields):
    return PatientFactory(practice=practice, **{"date_of_birth": born_years_before(8), "first_name": "Sofia", **fields})


def teenager(practice, **fields):
    return PatientFactory(practice=practice, **{"date_of_birth": born_years_before(15), "first_name": "Mateo", **fields})


def adult(practice, **fields):
    return PatientFactory(practice=practice, **{"date_of_birth": born_years_before(70), "first_name": "Rosa", **fields})


class RepresentativeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Representative

    first_name = "Maria"
    last_name = factory.Sequence(lambda n: f"Parent{n}")
    email = factory.Sequence(lambda n: f"parent{n}@family.example")
    mobile_phone = ""
    sms_consent = False


class AccessFactory(factory.django.DjangoModelFactory):
    """A parent's invited (not yet linked) full access to a child."""

    class Meta:
        model = RepresentativeAccess

    patient = factory.SubFactory(PatientFactory)
    practice = factory.SelfAttribute("patient.practice")
    representative = factory.SubFactory(RepresentativeFactory, practice=factory.SelfAttribute("..patient.practice"))
    relationship = Relationship.PARENT
    level = AccessLevel.FULL
    status = AccessStatus.INVITED
    ends_at_majority = True
