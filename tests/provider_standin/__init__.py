"""A local stand-in for email providers' HTTP APIs, for tests and benchmarks.

It speaks enough of four real APIs for django-anymail's own backends to send through it unchanged
(point them at it with their ``*_API_URL`` / endpoint settings; see `StandIn.anymail_settings`):

* Postmark ``POST /email`` (one message per call; ``/email/batch`` too);
* Mailgun ``POST /v3/<domain>/messages`` with ``recipient-variables`` batches (``%recipient.x%``
  substituted per recipient, as Mailgun does);
* SendGrid ``POST /v3/mail/send`` with one personalization (and its substitutions) per recipient;
* Amazon SES v2 ``POST /v2/email/outbound-emails`` (raw MIME, as boto3 sends it).

Like a provider it answers each call after a configurable latency, limits requests per second with a
token bucket and answers 429 beyond it (with ``Retry-After``), can answer the next N calls with a
temporary 5xx, refuses some recipients permanently (a local part starting ``invalid`` is not an
address; ``inactive`` has bounced before) and refuses everything with a configuration error
(``auth_fail``). It counts requests, messages, 429s and recipients emailed twice, and keeps the
messages it accepted (each recipient's own copy) for tests to read.

Run it in a thread of the test process (`StandIn().start()`) or as its own process
(``python -m tests.provider_standin --port 8025 --latency 0.08``) so that it does not share the
process it measures. Both are driven over HTTP: ``GET /_standin/stats``, ``GET /_standin/messages``,
``POST /_standin/config`` (JSON of `Behaviour` fields), ``POST /_standin/reset``.

Layout: `account` (one provider account: behaviour, token bucket, counters, accepted messages),
one module per API (`postmark`, `mailgun`, `sendgrid`, `amazon_ses`: what it accepts, refuses and
answers, and the anymail settings that reach it), `server` (the HTTP server) and `client` (the
control API and the settings that point anymail here).
"""

from tests.standin_http import control

from .account import Behaviour, Counters, Provider, Refused
from .client import anymail_environment, anymail_settings
from .mailgun import MAILGUN_DOMAIN, MAILGUN_KEY
from .postmark import POSTMARK_TOKEN
from .sendgrid import SENDGRID_KEY
from .server import StandIn

__all__ = [
    "MAILGUN_DOMAIN", "MAILGUN_KEY", "POSTMARK_TOKEN", "SENDGRID_KEY",
    "Behaviour", "Counters", "Provider", "Refused", "StandIn",
    "anymail_environment", "anymail_settings", "control",
]
