"""How many sign-in attempts are evaluated, and how a locked account is unlocked: the staff's
admin (`STAFF`) and the patient portal (`PATIENTS`, the same with 20 failures per address).

Three limits, each counted before it decides (`core.throttle.attempt`), so requests arriving
together cannot slip past a count that has not been taken yet:

1. **Per client address**: 10 failed sign-ins (any accounts) per 5 minutes. Guessing from one place.
2. **Per account and address**: 5 failed sign-ins of one account from one address lock that account
   *from that address* for 15 minutes. Someone guessing elsewhere never locks a user out of their
   own desk.
3. **Per account, from anywhere**: after 10 failures in 15 minutes, the account is slowed down:
   one attempt is evaluated per growing delay (2, 4, 8, 16, 32, then 60 seconds at most), however
   many addresses try. A browser this account has signed in from before (a signed cookie) is never
   slowed down, so a guesser elsewhere costs its owner nothing, and a new browser waits a minute at
   most.

A successful sign-in counts in none of them (its places are given back). A successful password
reset unlocks the account: its per-address locks and its slow-down are forgotten (`unlock`).
Refused attempts are not evaluated and take no place in the counts behind the one that refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

from core import throttle

@dataclass(frozen=True)
class SignInPolicy:
    """The limits of one sign-in page: (scope, limit, window seconds) each, and its known-browser cookie."""

    address: tuple[str, int, int]
    account_at_address: tuple[str, int, int]
    account: tuple[str, int, int]
    cookie_name: str
    cookie_path: str


STAFF = SignInPolicy(
    address=("staff-login", 10, 5 * 60),
    account_at_address=("staff-login-pair", 5, 15 * 60),
    account=("staff-login-account", 10, 15 * 60),
    cookie_name="portal_staff_browser",
    cookie_path="/admin/",
)
#: The patient portal: a family or a clinic's waiting room signs in from one address, so the
#: address's limit is higher; the per-account limits are the staff's.
PATIENTS = SignInPolicy(
    address=("portal-login", 20, 15 * 60),
    account_at_address=("portal-login-pair", 5, 15 * 60),
    account=("portal-login-account", 10, 15 * 60),
    cookie_name="portal_patient_browser",
    cookie_path="/",
)
SLOW_DOWN_MAX_SECONDS = 60

ADDRESS_LIMITED = "Too many failed sign-ins from this address. Wait a few minutes and try again."
LOCKED_HERE = (
    "This account is locked on this network for 15 minutes after too many failed sign-ins. Wait, or "
    "reset your password with the link below: that unlocks it at once."
)
SLOWED_DOWN = (
    "There have been many failed sign-ins to this account, so it accepts one try a minute from a new "
    "browser. Wait a minute and try again, or reset your password with the link below: that unlocks it."
)

#: How long a browser is remembered as one an account signed in from, and how many accounts it
#: remembers (a shared front-desk computer, a family's tablet).
KNOWN_BROWSER_DAYS = 90
KNOWN_BROWSER_ACCOUNTS = 5
KNOWN_BROWSER_COOKIE = STAFF.cookie_name
_SALT = "patients.staff_auth.known-browser"


def account_key(username: str) -> str:
    """Usernames are counted case-insensitively: FrontDesk_A and frontdesk_a are one account."""
    return (username or "").strip().lower()


def slow_down_seconds(failures: int, policy: SignInPolicy = STAFF) -> int:
    """The wait between evaluated attempts once an account has `failures` failures in the window."""
    excess = failures - policy.account[1]
    return 0 if excess <= 0 else min(2**excess, SLOW_DOWN_MAX_SECONDS)


def _fingerprint(account: str) -> str:
    return hashlib.sha256(f"{_SALT}:{account}".encode()).hexdigest()[:16]


def known_accounts(request: HttpRequest, policy: SignInPolicy = STAFF) -> list[str]:
    value = request.COOKIES.get(policy.cookie_name)
    if not value:
        return []
    try:
        accounts = signing.loads(value, salt=_SALT, max_age=KNOWN_BROWSER_DAYS * 86400)
    except signing.BadSignature:
        return []
    return [a for a in accounts if isinstance(a, str)] if isinstance(accounts, list) else []


def remember_browser(request: HttpRequest, response: HttpResponse, username: str, policy: SignInPolicy = STAFF) -> None:
    """Mark this browser as one `username` signed in from (or reset their password in)."""
    fingerprint = _fingerprint(account_key(username))
    accounts = [fingerprint] + [a for a in known_accounts(request, policy) if a != fingerprint]
    response.set_cookie(
        policy.cookie_name,
        signing.dumps(accounts[:KNOWN_BROWSER_ACCOUNTS], salt=_SALT),
        max_age=KNOWN_BROWSER_DAYS * 86400,
        path=policy.cookie_path,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


@dataclass
class SignInGate:
    """The limits' answer for one attempt: `refusal` is the message when it may not be evaluated."""

    refusal: str | None = None
    counted: list[throttle.Attempt] = field(default_factory=list)

    def succeeded(self) -> None:
        """A successful sign-in counts in no limit."""
        for attempt in self.counted:
            attempt.release()
        self.counted = []

    def _refuse(self, message: str) -> "SignInGate":
        self.succeeded()  # not evaluated: it takes no place in the counts
        self.refusal = message
        return self


def check(request: HttpRequest, username: str, policy: SignInPolicy = STAFF) -> SignInGate:
    """Count this attempt in each limit, in order, and say whether it may be evaluated."""
    gate = SignInGate()
    address = throttle.client_ip(request)
    scope, limit, window = policy.address
    by_address = throttle.attempt(scope, address, limit=limit, window_seconds=window)
    if not by_address.allowed:
        # Kept in the count: a flood from one address stays refused until it stops.
        return SignInGate(refusal=ADDRESS_LIMITED)
    gate.counted.append(by_address)
    account = account_key(username)
    if not account:
        return gate

    scope, limit, window = policy.account_at_address
    here = throttle.attempt(scope, (account, address), limit=limit, window_seconds=window)
    gate.counted.append(here)
    if not here.allowed:
        return gate._refuse(LOCKED_HERE)

    scope, limit, window = policy.account
    anywhere = throttle.attempt(scope, account, limit=limit, window_seconds=window)
    gate.counted.append(anywhere)
    if not anywhere.allowed and _fingerprint(account) not in known_accounts(request, policy):
        if not throttle.take_turn(scope, account, seconds=slow_down_seconds(anywhere.count, policy)):
            return gate._refuse(SLOWED_DOWN)
    return gate


def unlock(username: str, policy: SignInPolicy = STAFF) -> None:
    """Forget an account's failed sign-ins everywhere (its password was just reset)."""
    account = account_key(username)
    throttle.clear(policy.account_at_address[0], (account,))
    throttle.clear(policy.account[0], account)
