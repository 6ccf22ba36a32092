import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal_project.settings")
application = get_wsgi_application()

from portal_project.checks import require_production_config  # noqa: E402

require_production_config()
