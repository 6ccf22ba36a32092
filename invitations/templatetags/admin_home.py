"""The admin home page starts from the portal: the user's practices, their figures and the next
things to do, under a title that fits the user's role."""

from django import template
from django.urls import reverse

from patients import tenancy
from patients.models import Practice, Role
from patients.roles import SENIORITY

from invitations.models.figures import PracticeFigures

register = template.Library()

#: The home page's title for the most senior role a user holds.
TITLES = {
    Role.ADMIN: "Practice administration",
    Role.MANAGER: "Practice management",
    Role.FRONT_DESK: "Front desk",
    Role.VIEWER: "Overview (view only)",
}
#: A superuser's home lists this many practices (the practices page has them all).
SHOWN = 12


@register.simple_tag(takes_context=True)
def admin_home(context) -> dict:
    user = context["request"].user
    ids = tenancy.practice_ids_for(user)
    roles = {} if ids is None else {pk: tenancy.role_at(user, pk) for pk in ids}
    practices = Practice.objects.order_by("name")
    practices = list(practices[:SHOWN] if ids is None else practices.filter(pk__in=ids))
    figures = {f.practice_id: f for f in PracticeFigures.objects.filter(practice__in=practices)}
    rows = []
    for practice in practices:
        role = roles.get(practice.pk)
        snapshot = figures.get(practice.pk)
        data = snapshot.data if snapshot else {}
        rows.append({
            "practice": practice,
            "role": Role(role).label if role else "Superuser",
            "dashboard": reverse("admin:invitations_portal_dashboard", args=[practice.pk]),
            "patients": reverse("admin:patients_patient_changelist") + f"?practice__id__exact={practice.pk}",
            "add_patient": reverse("admin:patients_patient_add")
            if user.is_superuser or tenancy.can(user, "patients.add_patient", practice.pk) else None,
            "activate": reverse("admin:invitations_portal_activate", args=[practice.pk])
            if tenancy.manages(user, practice.pk) else None,
            "total": data.get("total"),
            "registered": data.get("active"),
            "counted_at": snapshot.computed_at if snapshot else None,
        })
    if user.is_superuser:
        title = "Administration"
    else:
        held = set(roles.values())
        title = next((TITLES[role] for role in SENIORITY if role in held), "Practice Portal")
    return {"title": title, "practices": rows, "more": ids is None and Practice.objects.count() > SHOWN}
