"""The admin's own pages for staff accounts: Django's user and group admins, guarded against
hostile list values like every other admin of the project. django-otp's device admins are not
offered: staff manage their own second factor on /admin/two-factor/ (devices hold secrets, and
those admins know nothing of practices)."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

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

for model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
