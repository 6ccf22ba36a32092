"""The admin's own pages for staff accounts: Django's user and group admins, guarded against
hostile list values like every other admin of the project, and the team list's "Reset two-factor
sign-in" action. django-otp's device admins are not offered: staff manage their own second factor on
/admin/two-factor/ (devices hold secrets, and those admins know nothing of practices)."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.hostile_input import HostileValueGuard

from patients import audit, tenancy
from patients.audit import AuditAction
from patients.models import Membership
from patients.staff_auth import two_factor

User = get_user_model()


class GuardedUserAdmin(HostileValueGuard, UserAdmin):
    pass


class GuardedGroupAdmin(HostileValueGuard, GroupAdmin):
    pass


for model, model_admin in ((User, GuardedUserAdmin), (Group, GuardedGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)

for model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.action(description="Reset two-factor sign-in (a lost phone and lost recovery codes)", permissions=["change"])
def reset_two_factor(modeladmin, request, queryset):
    """Remove the selected members' authenticators and recovery codes: they enrol again at their next
    sign-in. Only for accounts the acting user manages wholly (every practice of theirs is one of the
    actor's), never a superuser unless the actor is one, never the actor's own (their own page asks a
    code first)."""
    managed = tenancy.practice_ids_for(request.user, "patients.change_membership")
    memberships = list(queryset.select_related("user"))
    reset, skipped = {}, set()
    for membership in memberships:
        user = membership.user
        elsewhere = managed is not None and Membership.objects.filter(user=user).exclude(practice_id__in=managed).exists()
        if user == request.user or (user.is_superuser and not request.user.is_superuser) or elsewhere:
            skipped.add(user.pk)
            continue
        reset.setdefault(user.pk, (user, []))[1].append(membership)
    for user, user_memberships in reset.values():
        two_factor.turn_off(user)
        for membership in user_memberships:
            audit.record(
                practice_id=membership.practice_id, actor=request.user, action=AuditAction.MEMBER_CHANGED,
                summary=f"Two-factor sign-in reset for {user.email or user}: they enrol again at their next sign-in",
                details={"two_factor": "reset"},
            )
    if reset:
        modeladmin.message_user(request, f"Two-factor sign-in reset for {len(reset)} team member(s); they set it up again at their next sign-in.")
    if skipped:
        modeladmin.message_user(
            request,
            f"{len(skipped)} skipped: your own (use the Two-factor sign-in page), a superuser's, or someone who also "
            "works for a practice you do not manage (their admin or a superuser can reset it).",
            messages.WARNING,
        )
