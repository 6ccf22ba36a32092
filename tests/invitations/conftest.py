import datetime

import pytest
from django.core import mail


@pytest.fixture(autouse=True)
def _anymail_test_backend_and_clean_state(settings):
    # Django's test runner (and so pytest-django) replaces EMAIL_BACKEND with locmem; these
    # tests need anymail's test backend, which records what the provider would receive.
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    mail.outbox = []
    yield


@pytest.fixture
def one_of_each(practice_a):
    """A patient of practice A in each portal status, by last name."""
    from django.contrib.auth import get_user_model

    from invitations.models import Status
    from tests.clock import NOW
    from tests.factories import PatientFactory
    from tests.invitations.factories import InvitationFactory

    p = {name: PatientFactory(practice=practice_a, last_name=name) for name in
         ["Notinvited", "Pendingx", "Sentx", "Expiredx", "Runout", "Failedx", "Revokedx", "Activex"]}
    InvitationFactory(patient=p["Pendingx"], status=Status.PENDING, sent_at=None)
    InvitationFactory(patient=p["Sentx"])
    InvitationFactory(patient=p["Expiredx"], status=Status.EXPIRED, created_at=NOW - datetime.timedelta(days=9))
    InvitationFactory(patient=p["Runout"], created_at=NOW - datetime.timedelta(days=7, seconds=1))
    InvitationFactory(patient=p["Failedx"], status=Status.FAILED)
    InvitationFactory(patient=p["Revokedx"], status=Status.REVOKED)
    p["Activex"].portal_user = get_user_model().objects.create_user("active.one")
    p["Activex"].save()
    return p
