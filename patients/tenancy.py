"""Which practices a staff user may see and act on.

Every admin view, choice list, filter, action and custom page asks these functions; nothing
else decides tenancy. Results are cached on the user object for the length of a request.
"""

from typing import Optional

from patients.models import Membership, Practice
from patients.roles import MANAGING_ROLES, role_allows

_CACHE_ATTR = "_portal_memberships"


def _memberships(user) -> dict[int, str]:
    """practice id -> role for the user's memberships."""
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is None:
        cached = dict(Membership.objects.filter(user_id=user.pk).values_list("practice_id", "role"))
        setattr(user, _CACHE_ATTR, cached)
    return cached


def forget_memberships(user) -> None:
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


def practice_ids_for(user, perm: Optional[str] = None) -> Optional[set[int]]:
    """Ids of the practices where `user` holds a role (granting `perm`, if given).

    None means "every practice" (superusers); an empty set means none.
    """
    if not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return None
    return {
        practice_id
        for practice_id, role in _memberships(user).items()
        if perm is None or role_allows(role, perm)
    }


def practices_for(user, perm: Optional[str] = None):
    ids = practice_ids_for(user, perm)
    practices = Practice.objects.all()
    return practices if ids is None else practices.filter(pk__in=ids)


def can(user, perm: str, practice_id: Optional[int]) -> bool:
    """Whether `user` may do `perm` ("app_label.codename") on rows of one practice."""
    ids = practice_ids_for(user, perm)
    return ids is None or practice_id in ids


def role_at(user, practice_id: int) -> Optional[str]:
    if user.is_superuser:
        return "admin"
    return _memberships(user).get(practice_id)


def manages(user, practice_id: int) -> bool:
    """Whether `user` is a practice admin or manager at this practice (superusers everywhere)."""
    return role_at(user, practice_id) in MANAGING_ROLES


def practice_ids_with_role(user, roles: frozenset, perm: Optional[str] = None) -> Optional[set[int]]:
    """`practice_ids_for`, narrowed to the practices where the user's role is one of `roles`
    (None still means every practice: a superuser)."""
    ids = practice_ids_for(user, perm)
    if ids is None:
        return None
    return {pk for pk in ids if role_at(user, pk) in roles}
