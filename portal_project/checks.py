"""Refuse to serve or work with an unsafe production configuration.

The settings collect what is missing (PRODUCTION_CONFIG_ERRORS) without failing, so maintenance
commands run anywhere. The processes that serve traffic or send email call
`require_production_config()` when they start: WSGI, ASGI, Celery worker and beat. `manage.py
check` reports the same problems as errors.
"""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def require_production_config() -> None:
    errors = getattr(settings, "PRODUCTION_CONFIG_ERRORS", [])
    if errors:
        raise ImproperlyConfigured(" ".join(errors))


@checks.register(checks.Tags.security, deploy=True)
def production_config(app_configs=None, **kwargs):
    return [
        checks.Error(message, id="portal.E001")
        for message in getattr(settings, "PRODUCTION_CONFIG_ERRORS", [])
    ]
