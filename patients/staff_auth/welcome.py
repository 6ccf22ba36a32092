"""The email a new team member gets when a practice admin adds them (Memberships › Add).

A new account gets a link to choose its password (the staff password-reset link, which works once,
for PASSWORD_RESET_TIMEOUT); someone who already had an account is told which practice they can now
work with. Sent by a worker after the membership is saved (`SEND_TASK`, the interactive queue),
like every email, so the admin page does not wait on the email service.
"""

from __future__ import annotations

from typing import Optional

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from core.queue import enqueue_on_commit

from patients.models import Membership

SEND_TASK = "patients.send_staff_welcome"


def welcome_after_commit(membership: Membership, *, added_by, new_account: bool) -> None:
    enqueue_on_commit(SEND_TASK, membership.pk, getattr(added_by, "pk", None), new_account)


def send_welcome_email(membership_id: int, added_by_id: Optional[int], new_account: bool) -> bool:
    """Email the member of `membership_id` (the worker's part); False when there is nobody to email."""
    membership = Membership.objects.select_related("user", "practice").filter(pk=membership_id).first()
    if membership is None or not membership.user.is_active or not membership.user.email:
        return False
    user = membership.user
    added_by = get_user_model().objects.filter(pk=added_by_id).first() if added_by_id else None
    base = settings.PORTAL_BASE_URL.rstrip("/")
    set_password_url = ""
    if new_account and user.has_usable_password():
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        token = default_token_generator.make_token(user)
        set_password_url = base + reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})
    context = {
        "user": user,
        "practice": membership.practice,
        "role": membership.get_role_display(),
        "added_by": (added_by.get_full_name() or added_by.get_username()) if added_by else "Your practice admin",
        "set_password_url": set_password_url,
        "link_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
        "login_url": base + reverse("admin:login"),
    }
    subject = f"You have been added to {membership.practice.name} on Practice Portal"
    body = render_to_string("patients/email/staff_welcome.txt", context)
    EmailMessage(subject.replace("\n", " "), body, to=[user.email]).send()
    return True
