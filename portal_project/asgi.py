import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal_project.settings")
application = get_asgi_application()

from portal_project.checks import require_production_config  # noqa: E402

require_production_config()
