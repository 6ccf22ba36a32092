"""Fixtures for the notifications tests: eager Celery for every test (tasks run in-process after
commit), a practice team with two members, and the lender's webhook secret."""

import pytest

from patients.models import Role
from tests.factories import PatientFactory, PracticeFactory, staff_member

from .factories import LenderSettingsFactory


@pytest.fixture(autouse=True)
def _eager_everywhere(eager_celery):
    """tests/conftest.py's eager_celery, for every test in this directory."""


@pytest.fixture
def office(db):
    return PracticeFactory(name="Maple Dental", time_zone="America/New_York")


@pytest.fixture
def other_office(db):
    return PracticeFactory(name="Birch Smiles", time_zone="America/Los_Angeles")


@pytest.fixture
def alice(office):
    return staff_member(office, Role.FRONT_DESK, username="alice", email="alice@maple.example")


@pytest.fixture
def bob(office):
    return staff_member(office, Role.MANAGER, username="bob", email="bob@maple.example")


@pytest.fixture
def team(alice, bob):
    return [alice, bob]


@pytest.fixture
def plan_patient(office):
    return PatientFactory(
        practice=office,
        chart_number="CH-1001",
        first_name="Rosalind",
        last_name="Okonkwo",
        email="rosalind.okonkwo@example.com",
    )


@pytest.fixture
def lender_settings(office):
    return LenderSettingsFactory(practice=office)
