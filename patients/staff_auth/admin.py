"""The admin's own pages for staff accounts: Django's user and group admins, guarded against
hostile list values like every other admin of the project."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from core.hostile_input import HostileValueGuard

User = get_user_model()


class GuardedUserAdmin(HostileValueGuard, UserAdmin):
    pass


class GuardedGroupAdmin(HostileValueGuard, GroupAdmin):
    pass


for model, model_admin in ((User, GuardedUserAdmin), (Group, GuardedGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
