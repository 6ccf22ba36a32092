"""Staff password reset: the page answers at once and the same way for every address; the work of
finding the account and emailing it is done by a worker.

Sending inside the request told who had an account: a known address was answered in ~212 ms (the
email provider's round trip), an unknown one in ~7 ms. Now the request counts the limits and hands
the typed address to the task queue after commit, whatever it is; only the worker looks it up.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.http import HttpRequest

from core import throttle
from core.queue import enqueue_on_commit

#: Reset requests per client address per hour, and per typed address per hour (an inbox is not
#: flooded from many places). Both are counted whether or not the address is a staff account's.
ADDRESS_LIMIT = ("staff-reset", 5, 60 * 60)
EMAIL_LIMIT = ("staff-reset-email", 3, 60 * 60)
SEND_TASK = "patients.send_staff_password_reset"


class StaffPasswordResetForm(PasswordResetForm):
    """Staff resets go to staff accounts only; patients reset theirs on the portal."""

    def get_users(self, email):
        return (user for user in super().get_users(email) if user.is_staff)


def request_reset(request: HttpRequest, email: str) -> None:
    """Count the limits and, within them, hand the address to a worker once the transaction commits:
    the same work whether or not it belongs to anyone."""
    email = email.strip()
    scope, limit, window = ADDRESS_LIMIT
    if not throttle.attempt(scope, throttle.client_ip(request), limit=limit, window_seconds=window).allowed:
        return
    scope, limit, window = EMAIL_LIMIT
    if not throttle.attempt(scope, email.lower(), limit=limit, window_seconds=window).allowed:
        return
    enqueue_on_commit(SEND_TASK, email, private=True)


def email_reset_links(form_class: type[PasswordResetForm], email: str, **save_options) -> int:
    """Email a reset link to each account `form_class` finds for this address (the worker's part,
    for staff and patients alike); the number of emails sent. The link points at PORTAL_BASE_URL,
    like every link the site emails."""
    form = form_class(data={"email": email})
    if not form.is_valid():
        return 0
    users = list(form.get_users(form.cleaned_data["email"]))
    if not users:
        return 0
    base = urlsplit(settings.PORTAL_BASE_URL)
    form.save(domain_override=base.netloc, use_https=base.scheme == "https", **save_options)
    return len(users)


def send_reset_email(email: str) -> int:
    """Email a reset link to each active staff account with this address; how many."""
    return email_reset_links(StaffPasswordResetForm, email)
