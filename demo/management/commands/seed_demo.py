"""Demo data: two practices, their staff (one a member of both) and realistic patients.

Maple Street Dental sends invitations by text too (email first, a text to patients without a
usable email): most of its patients have a mobile number, many consented to texts (recorded as
taken by the front desk), some have no email, so Activate Now texts them, and its history has
texts delivered, undelivered and registered from. Riverside Aesthetics only emails.

Families at both practices (`FAMILIES`): siblings sharing a parent (some linked to the parent's own
login, one invited), a teenager with their own account and a parent with limited access, an adult
with a caregiver whose access has an end date, and a child with no parent or guardian on file. Most
other children too young for their own account have a parent on file, invited by nobody yet, so
Activate Now has invitations to send "via a parent or guardian".

Bulk inserts throughout: 100,000 patients take seconds, with a progress bar on large runs.
"""

import datetime
import random
import unicodedata
import uuid

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core import queue
from core.sending.errors import twilio_delivery_error
from invitations import representatives
from invitations.models import (
    Channel, EventKind, Invitation, InvitationEvent, InvitationTemplate, Source, Status, TextStatus, hash_token, new_token,
)
from invitations.vocabulary import TEXT_TOKEN_BYTES, last_digits
from notifications.models import ApplicationStatus
from notifications.services import apply_event
from patients.models import (
    AgeBand, BirthSex, BulkChannels, EmailOptOut, Membership, OptOutReason, Patient, Practice, Role, SmsOptOut, SmsOptOutReason,
    birthday_cutoff,
)
from patients.models.representatives import AccessLevel, AccessStatus, Relationship, Representative, RepresentativeAccess

DEMO_PASSWORD = "portal-demo-2026"
PATIENT_PASSWORD = "patient-demo-2026"
PRACTICES = [
    {"name": "Maple Street Dental", "time_zone": "America/New_York", "contact_email": "frontdesk@maple-dental.example", "contact_phone": "(617) 555-0142",
     "text_invitations_enabled": True, "bulk_channels": BulkChannels.EMAIL_THEN_TEXT},
    {"name": "Riverside Aesthetics", "time_zone": "America/Chicago", "contact_email": "hello@riverside-aesthetics.example", "contact_phone": "(312) 555-0199"},
]
# username, first, last, [(practice index, role)], superuser
STAFF = [
    ("admin", "Ada", "Admin", [], True),
    ("maple.admin", "Morgan", "Lee", [(0, Role.ADMIN)], False),
    ("frontdesk", "Frankie", "Desk", [(0, Role.FRONT_DESK)], False),
    ("manager", "Riley", "Both", [(0, Role.MANAGER), (1, Role.ADMIN)], False),
    ("viewer", "Vic", "Viewer", [(1, Role.VIEWER)], False),
]
SPANISH = "es"  # the demo's patients who prefer Spanish (at both practices)
FIRST_NAMES = "Olivia Liam Emma Noah Ava Elijah Sophia James Isabella Lucas Mia Mateo Amelia Benjamin Harper Theo Chloé José Zoë Renée Seán Aaliyah Nguyen Priya Wei".split()
LAST_NAMES = "Smith Johnson Williams Brown Jones García Miller Davis Rodríguez Martínez Hernández López Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Pérez Thompson White Harris O'Brien Nguyen Patel Kim Müller".split()
DOMAINS = ["example.com", "mail.example", "inbox.example", "family.example"]
#: Mobile numbers are fictional: 555-0100 to 555-0199 is set aside for fiction in every North
#: American area code (these are Boston's and Massachusetts'), and valid to the phone checks.
MOBILE_AREA_CODES = ("617", "857", "781", "339", "508", "774", "978", "351", "413")
#: What became of the invitations by text to patients without an email, in turn (None: never
#: invited, left for Activate Now to text).
TEXT_HISTORY = (Status.SENT, Status.EXPIRED, None, Status.FAILED, None, Status.SENT, None, None)
#: Who took the texting practice's patients' text consent, as the charts record it.
CONSENT_TAKEN_BY = "frontdesk"
#: Of the children too young for an own account, this share has a parent on file (not invited yet).
CHILDREN_WITH_A_PARENT = 0.7

#: The families of each practice (by the index in PRACTICES). A patient: (first name, age in years,
#: own login or ""). A representative: (first, last, login or "", relationship, level, [(child's
#: first name, "linked" or "invited")], days until their access ends or None). Logins use
#: PATIENT_PASSWORD; the README lists them.
FAMILIES = {
    0: {
        "Garcia": {
            "patients": [("Sofia", 9, ""), ("Lucas", 6, ""), ("Mia", 3, "")],
            "representatives": [("Elena", "Garcia", "elena.garcia", Relationship.PARENT, AccessLevel.FULL,
                                 [("Sofia", "linked"), ("Lucas", "linked"), ("Mia", "invited")], None)],
        },
        "Rivera": {
            "patients": [("Mateo", 15, "mateo.rivera")],
            "representatives": [("Carmen", "Rivera", "carmen.rivera", Relationship.PARENT, AccessLevel.LIMITED,
                                 [("Mateo", "linked")], None)],
        },
        "Alvarez": {
            "patients": [("Rosa", 81, "rosa.alvarez")],
            "representatives": [("Daniel", "Alvarez", "daniel.alvarez", Relationship.CAREGIVER, AccessLevel.FULL,
                                 [("Rosa", "linked")], 90)],
        },
        "Kim": {"patients": [("Noah", 7, "")], "representatives": []},  # no parent or guardian on file
    },
    1: {
        "Chen": {
            "patients": [("Lily", 10, ""), ("Max", 7, "")],
            "representatives": [("Wei", "Chen", "wei.chen", Relationship.PARENT, AccessLevel.FULL,
                                 [("Lily", "linked"), ("Max", "invited")], None)],
        },
        "Patel": {
            "patients": [("Ava", 16, "ava.patel")],
            "representatives": [("Raj", "Patel", "raj.patel", Relationship.PARENT, AccessLevel.LIMITED,
                                 [("Ava", "linked")], None)],
        },
        "O'Brien": {
            "patients": [("Margaret", 84, "margaret.obrien")],
            "representatives": [("Siobhan", "O'Brien", "siobhan.obrien", Relationship.CAREGIVER, AccessLevel.FULL,
                                 [("Margaret", "linked")], 60)],
        },
        "Müller": {"patients": [("Theo", 5, "")], "representatives": []},  # no parent or guardian on file
    },
}


class Command(BaseCommand):
    help = "Load demo practices, staff users and patients (prints the logins)."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=300, help="Patients per practice (default 300).")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if demo practices exist.")
        parser.add_argument("--seed", type=int, default=2026, help="Random seed, for repeatable data.")
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, patients: int, if_empty: bool, seed: int, batch_size: int, **options):
        existing = Practice.objects.filter(name__in=[p["name"] for p in PRACTICES]).exists()
        if existing and if_empty:
            self.stdout.write("Demo data already loaded.")
            self._print_logins()
            return
        rng = random.Random(seed)
        practices = [Practice.objects.get_or_create(name=p["name"], defaults=p)[0] for p in PRACTICES]
        self._create_staff(practices)
        self._write_wording(practices[1])
        for index, practice in enumerate(practices):
            self._create_patients(practice, patients, rng, batch_size)
            parents = self._give_children_parents(practice, rng)
            families = self._create_families(practice, FAMILIES.get(index, {}))
            self.stdout.write(f"{practice.name}: {families} families, {parents:,} more children with a parent on file.")
        self._print_logins()

    def _write_wording(self, practice: Practice) -> None:
        """Riverside wrote its own English email and no Spanish one yet: its Spanish speakers get the
        English version, which the template editor and Activate Now's preview say (Maple Street uses
        the shipped wording, in English and in Spanish)."""
        shipped = InvitationTemplate.default("en")
        InvitationTemplate.objects.get_or_create(
            practice=practice, language="en",
            defaults={"subject": "Your new patient portal at [Practice Name]", "html_body": shipped.html_body},
        )

    def _create_staff(self, practices: list[Practice]) -> None:
        User = get_user_model()
        for username, first, last, roles, superuser in STAFF:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"first_name": first, "last_name": last, "email": f"{username}@staff.example", "is_staff": True, "is_superuser": superuser},
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            for index, role in roles:
                Membership.objects.get_or_create(user=user, practice=practices[index], defaults={"role": role})

    def _create_patients(self, practice: Practice, count: int, rng: random.Random, batch_size: int) -> None:
        User = get_user_model()
        start = Patient.objects.filter(practice=practice).count()
        today = timezone.localdate()
        password_hash = make_password(PATIENT_PASSWORD)  # hashed once, shared by demo accounts
        now = timezone.now()
        texting = practice.text_invitations_enabled
        consent_by = User.objects.filter(username=CONSENT_TAKEN_BY).first() if texting else None
        opted_out: list[str] = []
        texts_allowed: list[str] = []
        family_email = ""
        progress = Progress(self.stderr, total=count, label=practice.name, enabled=count >= 20_000)
        made = 0
        while made < count:
            size = min(batch_size, count - made)
            batch: list[Patient] = []
            registered: list[tuple[Patient, str]] = []
            for offset in range(size):
                number = start + made + offset + 1
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                dob = today - datetime.timedelta(days=rng.randint(365 * 2, 365 * 95))
                email = f"{_ascii(first)}.{_ascii(last)}{number}@{rng.choice(DOMAINS)}".lower()
                kind = rng.random()
                patient = Patient(
                    practice=practice,
                    chart_number=f"{practice.pk:02d}-{number:07d}",
                    first_name=first,
                    last_name=last,
                    date_of_birth=dob,
                    zip_code=f"{rng.randint(1000, 99999):05d}",
                    email=email,
                    phone=f"(555) 01{rng.randint(0, 99):02d}-{rng.randint(0, 9999):04d}",
                    birth_sex=rng.choice([BirthSex.FEMALE, BirthSex.MALE]),
                    email_consent=True,
                    # One in five reads Spanish best (about the US share of Spanish speakers at home,
                    # rounded up); by the number, so the other choices' random draws stay as they were.
                    preferred_language=SPANISH if number % 5 == 0 else practice.default_language,
                )
                if kind < 0.06:
                    patient.email = ""  # no email on file
                elif kind < 0.10:
                    patient.email_consent = False
                elif kind < 0.12:
                    opted_out.append(patient.email)
                elif kind < 0.13:
                    patient.deceased = True
                elif kind < 0.15:
                    patient.zip_code = ""  # incomplete chart
                elif kind < 0.19:
                    # a family sharing one address
                    family_email = family_email if family_email and rng.random() < 0.6 else email
                    patient.email = family_email
                elif kind < 0.29:
                    registered.append((patient, f"{_ascii(first)}.{practice.pk}.{number}".lower()))
                if texting and _give_mobile(patient, rng, consent_by=consent_by, now=now):
                    texts_allowed.append(patient.mobile_phone)
                batch.append(patient)
            with transaction.atomic():
                Patient.objects.bulk_create(batch, batch_size=1000)
                if registered:
                    users = User.objects.bulk_create(
                        [User(username=username, email=p.email, first_name=p.first_name, last_name=p.last_name, password=password_hash) for p, username in registered],
                        batch_size=1000,
                    )
                    now = timezone.now()
                    for (patient, _), user in zip(registered, users):
                        patient.portal_user = user
                        patient.registered_at = now
                    Patient.objects.bulk_update([p for p, _ in registered], ["portal_user", "registered_at"], batch_size=1000)
            made += size
            progress.update(made)
        EmailOptOut.objects.bulk_create(
            [EmailOptOut(practice=practice, email=e, reason=OptOutReason.PATIENT_REQUEST) for e in set(opted_out)],
            ignore_conflicts=True,
        )
        # A few numbers replied STOP (bulk_create: no revoking signal; none has an invitation yet).
        stopped = rng.sample(sorted(set(texts_allowed)), k=min(len(set(texts_allowed)), max(1, len(texts_allowed) // 80)))
        SmsOptOut.objects.bulk_create(
            [SmsOptOut(practice=practice, phone=phone, reason=SmsOptOutReason.STOP_REPLY,
                       created_at=now - datetime.timedelta(days=rng.randint(1, 90))) for phone in stopped],
            ignore_conflicts=True,
        )
        progress.finish()
        invitations = self._create_invitation_history(practice, rng)
        texts = self._create_text_history(practice, rng) if texting else 0
        # The alerts these applications raise go to the bulk queue: dozens at once must not hold up
        # the first invitation someone sends from the fresh demo.
        with queue.in_background():
            applications = self._create_applications(practice, rng)
        by_text = f" ({texts:,} more by text only, {len(stopped)} numbers opted out of texts)" if texting else ""
        self.stdout.write(
            f"{practice.name}: {count:,} patients, {invitations:,} past invitations{by_text}, "
            f"{applications} payment-plan applications added."
        )

    def _create_invitation_history(self, practice: Practice, rng: random.Random) -> int:
        """A year of invitations, so status tags, filters, the dashboard and its chart have something
        to show: accepted ones for registered patients, and some still out, expired or failed."""
        now = timezone.now()
        lifetime = practice.link_lifetime
        patients = Patient.objects.filter(practice=practice).exclude(email="").filter(invitations__isnull=True)
        made = 0
        rows = patients.values_list("pk", "email", "portal_user_id", "registered_at", "mobile_phone", "sms_consent")
        for batch in _batches(rows, 2000):
            invitations, events = [], []
            for patient_id, email, portal_user_id, registered_at, mobile, sms_consent in batch:
                roll = rng.random()
                if portal_user_id and registered_at:
                    status, created = Status.ACCEPTED, now - datetime.timedelta(days=rng.randint(1, 360))
                elif roll < 0.15:
                    status, created = Status.SENT, now - datetime.timedelta(hours=rng.randint(2, 24 * 6))
                elif roll < 0.30:
                    status, created = Status.EXPIRED, now - datetime.timedelta(days=rng.randint(8, 360))
                elif roll < 0.33:
                    status, created = Status.FAILED, now - datetime.timedelta(days=rng.randint(1, 200))
                else:
                    continue
                invitation = Invitation(
                    practice=practice, patient_id=patient_id, email=email, status=status, is_latest=True,
                    token_hash=hash_token(new_token()), source=rng.choice([Source.BULK, Source.MANUAL, Source.NEW_PATIENT]),
                    created_at=created, sent_at=created + datetime.timedelta(minutes=1), expires_at=created + lifetime,
                )
                timeline = [(EventKind.CREATED, created, ""), (EventKind.SENT, invitation.sent_at, "")]
                if status == Status.ACCEPTED:
                    invitation.accepted_via = Channel.EMAIL
                    if practice.text_invitations_enabled and mobile and sms_consent and rng.random() < 0.5:
                        # Sent by email and text; half of these patients registered from the text.
                        timeline += _text_went_out(invitation, mobile, at=invitation.sent_at, delivered=True)
                        invitation.accepted_via = rng.choice([Channel.EMAIL, Channel.TEXT])
                    invitation.accepted_at = invitation.ended_at = created + datetime.timedelta(hours=rng.randint(1, 150))
                    timeline.append((EventKind.ACCEPTED, invitation.accepted_at, ""))
                elif status == Status.EXPIRED:
                    invitation.ended_at = invitation.expires_at
                    timeline.append((EventKind.EXPIRED, invitation.expires_at, ""))
                elif status == Status.FAILED:
                    invitation.ended_at = invitation.sent_at
                    invitation.failure_reason = "The email service reported: bounced (550 mailbox unavailable)"
                    timeline.append((EventKind.BOUNCED, invitation.sent_at, "550 mailbox unavailable"))
                invitations.append(invitation)
                events.append(timeline)
            with transaction.atomic():
                Invitation.objects.bulk_create(invitations, batch_size=1000)
                InvitationEvent.objects.bulk_create(
                    [InvitationEvent(invitation=inv, kind=kind, at=at, detail=detail) for inv, timeline in zip(invitations, events) for kind, at, detail in timeline],
                    batch_size=2000,
                )
                bounced = [inv.patient_id for inv in invitations if inv.status == Status.FAILED]
                Patient.objects.filter(pk__in=bounced).update(bounced_email=F("email"))
            made += len(invitations)
        return made

    def _create_text_history(self, practice: Practice, rng: random.Random) -> int:
        """Invitations by text only, to patients without an email who consented: delivered ones
        still out or expired, and undelivered ones (a landline, which the chart then shows). The
        rest are left for Activate Now to text."""
        now = timezone.now()
        lifetime = practice.link_lifetime
        landline = twilio_delivery_error(30006).detail
        patients = (
            Patient.objects.filter(practice=practice, email="", sms_consent=True, deceased=False, invitations__isnull=True)
            .exclude(mobile_phone="")
            .exclude(mobile_phone__in=SmsOptOut.objects.filter(practice=practice).values("phone"))
        )
        made = seen = 0
        for batch in _batches(patients.values_list("pk", "mobile_phone"), 2000):
            invitations, events, undeliverable = [], [], []
            for patient_id, mobile in batch:
                # In turn rather than by chance, so that even a small demo shows every state.
                status, seen = TEXT_HISTORY[seen % len(TEXT_HISTORY)], seen + 1
                if status == Status.SENT:
                    created = now - datetime.timedelta(hours=rng.randint(2, 24 * 6))
                elif status == Status.EXPIRED:
                    created = now - datetime.timedelta(days=rng.randint(8, 360))
                elif status == Status.FAILED:
                    created = now - datetime.timedelta(days=rng.randint(1, 200))
                else:
                    continue
                invitation = Invitation(
                    practice=practice, patient_id=patient_id, email="", by_email=False, status=status, is_latest=True,
                    source=rng.choice([Source.BULK, Source.MANUAL]), created_at=created, expires_at=created + lifetime,
                )
                sent = created + datetime.timedelta(minutes=1)
                timeline = [(EventKind.CREATED, created, "")]
                timeline += _text_went_out(invitation, mobile, at=sent, delivered=status != Status.FAILED)
                if status == Status.EXPIRED:
                    invitation.ended_at = invitation.expires_at
                    timeline.append((EventKind.EXPIRED, invitation.expires_at, ""))
                elif status == Status.FAILED:
                    invitation.ended_at = timeline[-1][1]
                    invitation.text_error = invitation.failure_reason = landline
                    timeline.append((EventKind.TEXT_UNDELIVERED, invitation.ended_at, landline))
                    undeliverable.append(patient_id)
                invitations.append(invitation)
                events.append(timeline)
            with transaction.atomic():
                Invitation.objects.bulk_create(invitations, batch_size=1000)
                InvitationEvent.objects.bulk_create(
                    [InvitationEvent(invitation=inv, kind=kind, at=at, detail=detail) for inv, timeline in zip(invitations, events) for kind, at, detail in timeline],
                    batch_size=2000,
                )
                Patient.objects.filter(pk__in=undeliverable).update(
                    undeliverable_mobile=F("mobile_phone"), undeliverable_mobile_reason=landline[:200]
                )
            made += len(invitations)
        return made

    def _create_applications(self, practice: Practice, rng: random.Random, count: int = 30) -> int:
        """Payment-plan applications at every step, fed through the same service as lender events
        (so due alerts are scheduled, and the demo's worker sends the immediate ones)."""

        now = timezone.now()
        steps = [ApplicationStatus.STARTED, ApplicationStatus.PRE_QUALIFIED, ApplicationStatus.APPROVED, ApplicationStatus.ACTIVATED]
        patient_ids = list(Patient.objects.filter(practice=practice).values_list("pk", flat=True)[:500])
        for number in range(1, min(count, len(patient_ids)) + 1):
            started = now - datetime.timedelta(days=rng.randint(0, 30), hours=rng.randint(0, 23))
            path = steps[: rng.randint(1, len(steps))]
            if rng.random() < 0.15:
                path = [ApplicationStatus.STARTED, ApplicationStatus.DECLINED]
            at, patient_id = started, rng.choice(patient_ids)
            for index, step in enumerate(path):
                if index:
                    at = min(now, at + datetime.timedelta(hours=rng.randint(1, 96)))
                apply_event(
                    practice_id=practice.pk, event_id=f"demo-{practice.pk}-{number}-{step}",
                    lender_application_id=f"DEMO-{practice.pk}-{number:04d}", patient_id=patient_id,
                    event_type=step, occurred_at=at, now=now,
                )
        return min(count, len(patient_ids))

    def _print_logins(self) -> None:
        self.stdout.write("\nStaff logins (password for all: %s):" % DEMO_PASSWORD)
        for username, _first, _last, roles, superuser in STAFF:
            where = "superuser, every practice" if superuser else ", ".join(
                f"{Role(role).label} at {PRACTICES[i]['name']}" for i, role in roles
            )
            self.stdout.write(f"  {username:<12} {where}")
        self.stdout.write(f"Registered demo patients log in with their username and '{PATIENT_PASSWORD}'.")
        self.stdout.write("Families (the same password):")
        for index, families in FAMILIES.items():
            for last, family in families.items():
                for first, _last, login, relationship, level, children, _ends in family["representatives"]:
                    linked = [child for child, state in children if state == "linked"]
                    self.stdout.write(
                        f"  {login:<16} {first} {last}, {Relationship(relationship).label.lower()} ({AccessLevel(level).label.lower()}) "
                        f"of {', '.join(linked)} at {PRACTICES[index]['name']}"
                    )
                for first, _age, login in family["patients"]:
                    if login:
                        self.stdout.write(f"  {login:<16} {first} {last}, the patient's own account at {PRACTICES[index]['name']}")
        self.stdout.write("")

    def _give_children_parents(self, practice: Practice, rng: random.Random) -> int:
        """Most children too young for an own account get a parent on file (invited by nobody yet):
        children sharing an email share the parent, whose address it is. Set-based."""
        now = timezone.now()
        cutoff = birthday_cutoff(practice.today(now), practice.own_account_age)
        children = (
            Patient.objects.filter(practice=practice, date_of_birth__gt=cutoff, portal_user__isnull=True, deceased=False)
            .filter(representative_accesses__isnull=True).exclude(chart_number__startswith=f"{practice.pk:02d}-F").order_by("pk")
            .values_list("pk", "last_name", "email", "mobile_phone", "sms_consent")
        )
        made = 0
        for batch in _batches(children, 2000):
            parents: dict[str, Representative] = {}
            families: list[tuple[int, str]] = []
            for patient_id, last, email, mobile, sms_consent in batch:
                if rng.random() >= CHILDREN_WITH_A_PARENT:
                    continue
                key = email or f"child-{patient_id}"
                if key not in parents:
                    first = rng.choice(FIRST_NAMES)
                    parents[key] = Representative(
                        practice=practice, first_name=first, last_name=last, created_at=now,
                        email=email or f"{_ascii(first)}.{_ascii(last)}.{patient_id}@family.example".lower(),
                        mobile_phone=mobile, sms_consent=sms_consent,
                    )
                families.append((patient_id, key))
            with transaction.atomic():
                Representative.objects.bulk_create(list(parents.values()), batch_size=1000)
                RepresentativeAccess.objects.bulk_create(
                    [
                        RepresentativeAccess(
                            practice=practice, patient_id=patient_id, representative=parents[key], relationship=Relationship.PARENT,
                            level=AccessLevel.FULL, status=AccessStatus.INVITED, granted_at=now, ends_at_majority=True,
                        )
                        for patient_id, key in families
                    ],
                    batch_size=1000,
                )
            made += len(families)
        return made

    def _create_families(self, practice: Practice, families: dict) -> int:
        """The named families (FAMILIES), through the same workflows staff and patients use: each
        grant audited, linked accesses with their accepted invitation, an invited one with its link
        out. Skipped when the practice has them already (a second run of the command)."""
        User = get_user_model()
        now = timezone.now()
        today = practice.today(now)
        password_hash = make_password(PATIENT_PASSWORD)
        staff = User.objects.filter(username=CONSENT_TAKEN_BY).first()
        made = 0
        for number, (last, family) in enumerate(families.items(), start=1):
            chart_prefix = f"{practice.pk:02d}-F{number:02d}"
            if Patient.objects.filter(practice=practice, chart_number__startswith=chart_prefix).exists():
                continue
            # The family's inbox: the parent's or caregiver's address, on the children's charts too.
            who = _ascii(family["representatives"][0][0]).lower() if family["representatives"] else "the"
            inbox = f"{who}.{_ascii(last).lower()}@family.example"
            patients = {}
            with transaction.atomic():
                for child, (first, age, login) in enumerate(family["patients"], start=1):
                    patient = Patient(
                        practice=practice, chart_number=f"{chart_prefix}{child}", first_name=first, last_name=last,
                        date_of_birth=birthday_cutoff(today, age) - datetime.timedelta(days=40 * child), zip_code="02139",
                        # A child's chart has the family's inbox; patients with their own login have their own.
                        email=f"{_ascii(first).lower()}.{_ascii(last).lower()}@mail.example" if login else inbox,
                        birth_sex=BirthSex.FEMALE if first in ("Sofia", "Mia", "Rosa", "Lily", "Ava", "Margaret") else BirthSex.MALE,
                        email_consent=True, preferred_language=practice.default_language,
                    )
                    if login:
                        patient.portal_user = User.objects.create(
                            username=login, email=patient.email, first_name=first, last_name=last, password=password_hash,
                        )
                        patient.registered_at = now - datetime.timedelta(days=30)
                    patient.save()
                    if login:
                        self._accepted_invitation(patient, email=patient.email, at=patient.registered_at)
                    patients[first] = patient
                for first, rep_last, login, relationship, level, children, ends_in in family["representatives"]:
                    representative = Representative.objects.create(
                        practice=practice, first_name=first, last_name=rep_last, email=inbox, created_by=staff,
                        portal_user=User.objects.create(
                            username=login, email=inbox, first_name=first, last_name=rep_last, password=password_hash,
                        ),
                    )
                    for child, state in children:
                        patient = patients[child]
                        adult = practice.age_band(patient.date_of_birth, today) == AgeBand.ADULT
                        access = representatives.grant(
                            patient, representative, relationship=relationship, level=level, now=now - datetime.timedelta(days=20),
                            actor=staff if not adult else patient.portal_user, by_patient=adult,
                            full_access_reason="", ends_at=now + datetime.timedelta(days=ends_in) if ends_in else None,
                        )
                        if state == "linked":
                            invitation = self._accepted_invitation(patient, email=inbox, at=now - datetime.timedelta(days=19), access=access)
                            access.activate(invitation.accepted_at)
                        else:
                            self._open_invitation(access, email=inbox, at=now - datetime.timedelta(days=2))
            made += 1
        return made

    def _accepted_invitation(self, patient: Patient, *, email: str, at: datetime.datetime, access=None) -> Invitation:
        """A registration a while ago: the patient's own (`is_latest`), or a representative's link."""
        fields = dict(
            email=email, status=Status.ACCEPTED, token_hash=hash_token(new_token()), source=Source.MANUAL,
            created_at=at - datetime.timedelta(days=1), sent_at=at - datetime.timedelta(days=1), expires_at=at + datetime.timedelta(days=6),
            accepted_at=at, ended_at=at, accepted_via=Channel.EMAIL,
        )
        if access is None:
            invitation = Invitation.objects.create(practice=patient.practice, patient=patient, is_latest=True, **fields)
        else:
            invitation = Invitation.objects.create_for_representative(access=access, **fields)
        InvitationEvent.objects.bulk_create([
            InvitationEvent(invitation=invitation, kind=kind, at=when, detail="")
            for kind, when in ((EventKind.CREATED, invitation.created_at), (EventKind.SENT, invitation.sent_at), (EventKind.ACCEPTED, at))
        ])
        return invitation

    def _open_invitation(self, access: RepresentativeAccess, *, email: str, at: datetime.datetime) -> Invitation:
        """A representative's link sent a couple of days ago and not used yet."""
        invitation = Invitation.objects.create_for_representative(
            access=access, email=email, status=Status.SENT, token_hash=hash_token(new_token()), source=Source.MANUAL,
            created_at=at, sent_at=at, expires_at=at + access.practice.link_lifetime,
        )
        InvitationEvent.objects.bulk_create([
            InvitationEvent(invitation=invitation, kind=kind, at=at, detail="") for kind in (EventKind.CREATED, EventKind.SENT)
        ])
        return invitation


def _give_mobile(patient: Patient, rng: random.Random, *, consent_by, now: datetime.datetime) -> bool:
    """Most of a texting practice's patients get a (fictional) mobile number, every one without an
    email does; many consented to texts at the front desk. Returns whether texts are allowed."""
    roll = rng.random()
    if patient.email and roll >= 0.7:
        return False
    patient.mobile_phone = f"+1{rng.choice(MOBILE_AREA_CODES)}5550{rng.randint(100, 199)}"
    if roll >= (0.85 if not patient.email else 0.55):
        return False
    patient.sms_consent = True
    patient.note_sms_consent_change(by=consent_by, now=now - datetime.timedelta(days=rng.randint(1, 700)))
    return True


def _text_went_out(invitation: Invitation, mobile: str, *, at: datetime.datetime, delivered: bool) -> list[tuple[str, datetime.datetime, str]]:
    """Make `invitation` go by text to `mobile` at `at` (queued, then sent to the carrier, and
    delivered if `delivered`); returns its timeline entries, as the status callbacks write them."""
    invitation.by_text = True
    invitation.text_to = mobile
    invitation.text_token_hash = hash_token(new_token(TEXT_TOKEN_BYTES))
    invitation.text_sent_at = at
    invitation.text_sid = "SM" + uuid.uuid4().hex
    invitation.text_status = TextStatus.DELIVERED if delivered else TextStatus.UNDELIVERED
    timeline = [
        (EventKind.TEXT_QUEUED, at, f"To {last_digits(mobile)}"),
        (EventKind.TEXT_SENT, at + datetime.timedelta(seconds=2), ""),
    ]
    if delivered:
        timeline.append((EventKind.TEXT_DELIVERED, at + datetime.timedelta(seconds=9), ""))
    return timeline


def _batches(rows, size: int):
    batch = []
    for row in rows.iterator(chunk_size=size):
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _ascii(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if c.isalnum() and c.isascii())


class Progress:
    def __init__(self, stream, *, total: int, label: str, enabled: bool):
        self.stream, self.total, self.label, self.enabled = stream, total, label, enabled and total > 0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / self.total)
        self.stream.write(f"\r{self.label}: [{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,}", ending="")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("")

