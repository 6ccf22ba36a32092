import datetime
import itertools

import factory

from invitations.models import Invitation, Source, Status, hash_token
from tests.clock import NOW
from tests.factories import PatientFactory

_tokens = itertools.count()


class InvitationFactory(factory.django.DjangoModelFactory):
    """An invitation as the send task leaves it: sent, link valid for 7 days from `created_at`."""

    class Meta:
        model = Invitation

    patient = factory.SubFactory(PatientFactory)
    practice = factory.SelfAttribute("patient.practice")
    email = factory.SelfAttribute("patient.email")
    token_hash = factory.LazyFunction(lambda: hash_token(f"unused-{next(_tokens)}"))
    status = Status.SENT
    source = Source.MANUAL
    created_at = NOW
    sent_at = factory.SelfAttribute("created_at")
    expires_at = factory.LazyAttribute(lambda o: o.created_at + datetime.timedelta(days=7))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Like the services: each new invitation becomes the patient's latest.
        return model_class.objects.create_latest(**kwargs)


def invitation_with_token(**kwargs) -> tuple[Invitation, str]:
    """A sent invitation and the token its email carried."""
    token = f"test-token-{next(_tokens):05d}-abcdefghijklmnopqrstuvwxyz"
    return InvitationFactory(token_hash=hash_token(token), **kwargs), token
