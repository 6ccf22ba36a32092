"""Why a patient cannot be invited now, and by which channel they can: every rule in one place.

Each rule is a database condition that is true when it *blocks* an invitation. A rule blocks the
whole invitation (``channel=""``: registered, deceased, a missing name...) or one channel: email
(no address, no email consent, opted out, bounced...) or text (no mobile number, no text
consent, replied STOP, undeliverable, texts turned off for the practice...). A `Plan` says which
channels an invitation may use:

* ``email`` / ``text``: that channel only; ``both``: both, each must be usable (the front desk's
  explicit choices);
* ``auto``: email when it can be used, else a text (the front desk's default; Activate Now's
  "email, then text"); at a practice with texts turned off this is exactly "email";
* ``each``: every usable channel, at least one (Activate Now's "email and text").

The same conditions serve one patient (`channels_for` / `reasons_for`: one query, every reason)
and a whole practice (`eligible`, `tally` for Activate Now's preview and the monthly run), so the
single invite, the new-patient checkbox, resend and bulk runs can never disagree.

A representative's invitation (a parent, guardian or caregiver invited to act for the patient)
has rules of its own on `RepresentativeAccess` rows (`representatives`), decided with the same
plans. The age bands of the practice (`Practice.own_account_age`, `Practice.adult_age`) enter the
patient's own rules: a child gets no own invitation (only their representatives do), and a
patient's own invitation never goes to a representative's address or number.

| what | module |
|---|---|
| the patient's own rules (each a condition that blocks) | `rules` |
| plans, decisions for one patient, counts for a practice | `plans` |
| the same rules for a patient not saved yet (the add form) | `new_patients` |
| a representative's invitation; a bulk run's children through their parents | `representatives` |
"""

from invitations.eligibility.new_patients import (  # noqa: F401
    NEEDED_FOR_INVITATION, NEEDED_FOR_TEXT, RULE_FIELDS, decide_before_saving, reasons_before_saving,
)
from invitations.eligibility.plans import (  # noqa: F401
    NOT_A_SKIP_FOR_DASHBOARD, PLAN_OF_BULK, PLAN_OF_SEND_BY, Conditions, Decision, Plan, Preview, Tally, blocking_condition,
    bulk_plan, channels_for, conditions, conditions_of, eligible, preview_of, reasons, reasons_for, reasons_text,
    rule_verdicts, tally,
)
from invitations.eligibility.representatives import (  # noqa: F401
    BULK_RELATIONSHIPS, BULK_RULES_BY_CODE, CHILD_NO_REPRESENTATIVE, REPRESENTATIVE_RULES, REPRESENTATIVE_RULES_BY_CODE,
    BulkTally, eligible_representatives, guardians_to_invite, representative_channels_for, representative_reasons_for,
    representative_verdicts, tally_bulk, tally_representatives, too_young,
)
from invitations.eligibility.rules import (  # noqa: F401
    EMAIL_SHAPE, RECENT_INVITATION_WINDOW, RULES, RULES_BY_CODE, Reason, Rule, younger_than,
)

#: Every rule by its code, a patient's own and a representative's, and a bulk run's child with
#: nobody to invite (run summaries and "Why no invite?" name skips by code).
ALL_RULES_BY_CODE = BULK_RULES_BY_CODE
