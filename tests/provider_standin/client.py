"""The stand-in from the outside: its control API over HTTP, and the settings that point
anymail's real backends (in this process or a worker's environment) at it."""

import json
from typing import Any

from . import amazon_ses, mailgun, postmark, sendgrid

# The APIs the stand-in speaks, by anymail's name for the provider.
APIS = {api.NAME: api for api in (postmark, mailgun, sendgrid, amazon_ses)}


def anymail_settings(url: str, provider: str) -> dict[str, Any]:
    """Django settings (EMAIL_BACKEND and ANYMAIL) that send through anymail's real `provider`
    backend to the stand-in at `url`."""
    return {
        "EMAIL_BACKEND": f"anymail.backends.{provider}.EmailBackend",
        "ANYMAIL": {"REQUESTS_TIMEOUT": 30, **APIS[provider].anymail_settings(url)},
    }


def anymail_environment(url: str, provider: str) -> dict[str, str]:
    """The same as environment variables, for a worker process (settings read ANYMAIL_* and
    EMAIL_PROVIDER from the environment)."""
    configured = anymail_settings(url, provider)["ANYMAIL"]
    # A production configuration needs the tracking webhooks' secret next to a provider.
    env = {"EMAIL_PROVIDER": provider, "ANYMAIL_WEBHOOK_SECRET": "standin:webhook-secret"}
    for key, value in configured.items():
        env[f"ANYMAIL_{key}"] = json.dumps(value) if isinstance(value, dict) else str(value)
    return env
