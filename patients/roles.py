"""Staff roles and what each may do.

A role maps to a Django group with model permissions, so the admin shows each user only the
screens and buttons their roles allow. Because one user may hold different roles in different
practices, the admin also checks the role *at the row's practice* (see ``patients.tenancy``):
a manager at one office who is a viewer at another cannot change the second office's rows.
"""

from fnmatch import fnmatch

from django.contrib.auth.models import Group, Permission

from patients.models import Role

PORTAL_APPS = ("patients", "invitations", "notifications")

_VIEW_ALL = [f"{app}.view_*" for app in PORTAL_APPS]
_FRONT_DESK = _VIEW_ALL + [
    "patients.add_patient",
    "patients.change_patient",
    "patients.add_emailoptout",
    "patients.change_emailoptout",
    "patients.add_smsoptout",
    "patients.change_smsoptout",
    "patients.add_representative",
    "patients.change_representative",
    "patients.add_representativeaccess",
    "patients.change_representativeaccess",
    "invitations.add_*",
    "invitations.change_*",
    "notifications.change_paymentplanapplication",
]
_MANAGER = _FRONT_DESK + [
    "patients.delete_patient",
    "patients.delete_emailoptout",
    "patients.delete_smsoptout",
    "invitations.*",
    "notifications.*",
]
_ADMIN = [f"{app}.*" for app in PORTAL_APPS]

# Patterns of "app_label.codename" each role is granted.
ROLE_PERMISSION_PATTERNS: dict[str, list[str]] = {
    Role.VIEWER: _VIEW_ALL,
    Role.FRONT_DESK: _FRONT_DESK,
    Role.MANAGER: _MANAGER,
    Role.ADMIN: _ADMIN,
}
# Practice settings and team members: practice admins only, whatever the patterns above say.
ADMIN_ONLY = {
    "patients.add_practice",
    "patients.change_practice",
    "patients.delete_practice",
    "patients.add_membership",
    "patients.change_membership",
    "patients.delete_membership",
}

#: Activate Now, the invitation email's wording and the portal's switches are the practice admins'
#: and managers' call, not the front desk's (`patients.tenancy.manages` asks it per practice).
MANAGING_ROLES = frozenset({Role.ADMIN, Role.MANAGER})
#: Most senior first (the admin home page is titled for the most senior role a user holds).
SENIORITY = (Role.ADMIN, Role.MANAGER, Role.FRONT_DESK, Role.VIEWER)

GROUP_NAMES = {
    Role.ADMIN: "Practice admins",
    Role.MANAGER: "Managers",
    Role.FRONT_DESK: "Front desk",
    Role.VIEWER: "Viewers",
}


def role_allows(role: str, perm: str) -> bool:
    """Whether `role` grants the permission "app_label.codename"."""
    if perm in ADMIN_ONLY and role != Role.ADMIN:
        return False
    return any(fnmatch(perm, pattern) for pattern in ROLE_PERMISSION_PATTERNS.get(role, ()))


def sync_role_groups(**kwargs) -> None:
    """Create one group per role with its permissions (runs after every migrate)."""
    permissions = list(
        Permission.objects.filter(content_type__app_label__in=PORTAL_APPS).select_related(
            "content_type"
        )
    )
    for role, group_name in GROUP_NAMES.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.set(
            [
                p
                for p in permissions
                if role_allows(role, f"{p.content_type.app_label}.{p.codename}")
                # Practices are created by superusers; admins only change their own.
                and p.codename not in {"add_practice", "delete_practice"}
            ]
        )


def sync_user_groups(user) -> None:
    """Give a staff user the groups of every role they hold and staff status while they hold any."""
    roles = set(user.memberships.values_list("role", flat=True))
    groups = list(Group.objects.filter(name__in=[GROUP_NAMES[r] for r in roles]))
    managed = Group.objects.filter(name__in=GROUP_NAMES.values())
    user.groups.remove(*managed.exclude(pk__in=[g.pk for g in groups]))
    user.groups.add(*groups)
    should_be_staff = bool(roles) or user.is_superuser
    if user.is_staff != should_be_staff:
        user.is_staff = should_be_staff
        user.save(update_fields=["is_staff"])
