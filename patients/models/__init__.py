"""The ground layer's models, a module each, all importable from `patients.models`:

| what | module |
|---|---|
| practices (the tenant), staff memberships and roles, the age bands of family access | `practices` |
| patients: the chart, search keys, dates of birth as typed | `patients` |
| the email and text opt-out lists (one shape: `OptOutEntry`) | `opt_outs` |
| representatives (parents, guardians, caregivers) and their access to patients | `representatives` |

The audit trail (`patients.audit`) and the ops records (`patients.jobs`) keep their models beside
the code that writes them.
"""

from patients.models.practices import (  # noqa: F401
    AgeBand, BulkChannels, COUNTRY_CHOICES, MAX_ADULT_AGE, MAX_OWN_ACCOUNT_AGE, MIN_ADULT_AGE,
    MIN_OWN_ACCOUNT_AGE, Membership, Practice, Role, birthday_cutoff, years_between,
)
from patients.models.patients import (  # noqa: F401
    BirthSex, DATE_OF_BIRTH_FORMATS, DATE_OF_BIRTH_FORMATS_IN_WORDS, DateOfBirthField, DateOfBirthFormField,
    E164_SHAPE, MAX_AGE_YEARS, Patient, PatientQuerySet, SEARCH_SOURCES, ZIP_CODE_VALIDATOR,
    born_in_past_century, chart_digits_key, chart_key, last_word_key, name_key, normalise_email,
    parse_date_of_birth, phone_key, search_keys_of, validate_date_of_birth,
)
from patients.models.opt_outs import (  # noqa: F401
    EmailOptOut, EmailOptOutQuerySet, OptOutEntry, OptOutReason, SmsOptOut, SmsOptOutQuerySet,
    SmsOptOutReason,
)
from patients.models.representatives import (  # noqa: F401
    AccessLevel, AccessNotice, AccessQuerySet, AccessStatus, EndReason, LIVE_STATUSES, NoticeKind,
    Relationship, Representative, RepresentativeAccess, access_for, ends_soon,
)
# Migrations name these by their old home.
from patients.models.practices import _time_zone_choices  # noqa: F401,E402
from patients.audit import AuditEntry  # noqa: E402,F401
from patients.jobs import JobRun, WorkerHeartbeat  # noqa: E402,F401
