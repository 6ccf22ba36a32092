from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from patients.models import Membership
from patients.roles import sync_user_groups
from patients.tenancy import forget_memberships


@receiver([post_save, post_delete], sender=Membership, dispatch_uid="patients.membership_changed")
def membership_changed(sender, instance: Membership, **kwargs) -> None:
    forget_memberships(instance.user)
    sync_user_groups(instance.user)
