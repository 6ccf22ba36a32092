"""What each email provider's API can do for a bulk send (read by `transports.email`).

Two paths (the README's "Sending to the email provider" section has the table):

* **batch**: one API call carries many messages, each recipient with their own values (their link,
  their first name) filled in by the provider. Mailgun (``recipient-variables``, up to 1,000
  recipients a call) and SendGrid (one personalization per recipient, up to 1,000). anymail sends
  a message with ``merge_data`` this way; the body holds the provider's field markers.
* **one message per call**, many calls at once through a bounded pool: every other provider,
  including Postmark and Amazon SES, whose batch APIs only fill templates stored at the provider
  (ours are edited in the admin and kept here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from django.conf import settings


@dataclass(frozen=True)
class MergeSyntax:
    """How a per-recipient field is written in a batch message's body, and named in anymail's
    ``merge_data`` for that provider."""

    field_format: str  # the marker in the body, e.g. "%recipient.{}%"
    key_format: str  # the key in merge_data, e.g. "{}"

    def field(self, name: str) -> str:
        return self.field_format.format(name)

    def key(self, name: str) -> str:
        return self.key_format.format(name)


@dataclass(frozen=True)
class Provider:
    name: str
    #: Most recipients one call may carry; 1 = one message per call.
    batch_limit: int = 1
    merge: Optional[MergeSyntax] = None
    #: Whether the backend takes anymail's ``track_clicks`` (Amazon SES refuses the option: click
    #: tracking there is a configuration set's setting, off unless one turns it on).
    accepts_track_clicks: bool = True

    @property
    def batches(self) -> bool:
        return self.batch_limit > 1 and self.merge is not None


MAILGUN = MergeSyntax(field_format="%recipient.{}%", key_format="{}")
# SendGrid replaces substitution keys literally, so the key is the marker itself.
SENDGRID = MergeSyntax(field_format=":pp_{}:", key_format=":pp_{}:")

PROVIDERS = {
    "mailgun": Provider("mailgun", batch_limit=1000, merge=MAILGUN),
    "sendgrid": Provider("sendgrid", batch_limit=1000, merge=SENDGRID),
}
#: anymail backends that take ``track_clicks``; the others refuse a message that sets it.
TRACK_CLICKS = {"mailersend", "mailgun", "mailjet", "mandrill", "postmark", "resend", "sendgrid", "sparkpost", "test", "unisender_go"}


def current() -> Provider:
    """The provider behind ``EMAIL_BACKEND`` (an anymail backend's module name), with the batch
    size capped by ``PORTAL_EMAIL_BATCH_SIZE`` (1 turns batches off)."""
    backend = settings.EMAIL_BACKEND
    anymail = backend.startswith("anymail.backends.")
    name = backend.rsplit(".", 2)[-2] if anymail else backend
    # Django's own backends ignore the attribute.
    provider = PROVIDERS.get(name) or Provider(name, accepts_track_clicks=not anymail or name in TRACK_CLICKS)
    if name == "sendgrid":
        # anymail formats SendGrid's substitution keys with SENDGRID_MERGE_FIELD_FORMAT when set:
        # the marker in the body must then be that format around the plain name.
        field_format = (getattr(settings, "ANYMAIL", None) or {}).get("SENDGRID_MERGE_FIELD_FORMAT")
        if field_format:
            provider = Provider("sendgrid", batch_limit=provider.batch_limit,
                                merge=MergeSyntax(field_format=field_format, key_format="{}"))
    cap = int(getattr(settings, "PORTAL_EMAIL_BATCH_SIZE", 500) or 1)
    if provider.batch_limit > cap:
        provider = Provider(provider.name, batch_limit=max(cap, 1), merge=provider.merge,
                            accepts_track_clicks=provider.accepts_track_clicks)
    return provider
