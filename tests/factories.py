import datetime

import factory
from django.contrib.auth import get_user_model

from patients.models import BirthSex, Membership, Patient, Practice, Role


class PracticeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Practice

    name = factory.Sequence(lambda n: f"Practice {n}")
    contact_email = "office@practice.example"
    contact_phone = "(555) 010-0000"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@staff.example")
    password = factory.django.Password("pw-for-tests-only")


class StaffFactory(UserFactory):
    is_staff = True


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(StaffFactory)
    practice = factory.SubFactory(PracticeFactory)
    role = Role.FRONT_DESK


class PatientFactory(factory.django.DjangoModelFactory):
    """An invitable patient: every required field present, consent given."""

    class Meta:
        model = Patient

    practice = factory.SubFactory(PracticeFactory)
    chart_number = factory.Sequence(lambda n: f"C{n:06d}")
    first_name = "Jane"
    last_name = factory.Sequence(lambda n: f"Doe{n}")
    date_of_birth = datetime.date(1980, 5, 17)
    zip_code = "02139"
    email = factory.Sequence(lambda n: f"patient{n}@example.com")
    phone = "(555) 010-1234"
    birth_sex = BirthSex.FEMALE
    email_consent = True

    class Params:
        #: PatientFactory(texting=True): also reachable by text (consent and a mobile number of
        #: its own, unless the test gives one).
        texting = factory.Trait(sms_consent=True, mobile_phone=factory.Sequence(lambda n: f"+1617555{n % 10000:04d}"))


def staff_member(practice, role=Role.FRONT_DESK, **user_fields):
    user = StaffFactory(**user_fields)
    Membership.objects.create(user=user, practice=practice, role=role)
    user.refresh_from_db()
    return user
