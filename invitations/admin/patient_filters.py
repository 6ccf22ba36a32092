"""A patient-list filter for "why no invite?": patients that one eligibility rule blocks now.

The portal access dashboard links each "not eligible" figure here, so the number and the list
come from the same rule (`invitations.eligibility.RULES`).
"""

from django.contrib import admin
from django.db.models import Q
from django.utils import timezone

from invitations import eligibility

#: Rules that mean "cannot be invited"; the others describe waiting (an open or recent link).
REASON_CODES = [
    rule.code for rule in eligibility.RULES if rule.code not in {"registered", "open_invitation", "invited_recently"}
]


class NoInviteReasonFilter(admin.SimpleListFilter):
    title = "why no invitation"
    parameter_name = "no_invite"

    def lookups(self, request, model_admin):
        return [(code, eligibility.RULES_BY_CODE[code].message.split(":")[0].rstrip(".")) for code in REASON_CODES]

    def queryset(self, request, queryset):
        rule = eligibility.RULES_BY_CODE.get(self.value() or "")
        if rule is None or rule.code not in REASON_CODES:
            return queryset
        return queryset.filter(Q(rule.blocks(timezone.now())), portal_user__isnull=True)
