from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import health


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitors: 200 when the database, the broker and a worker are fine, else 503."""
    checks = health.run_all()
    healthy = all(check.ok for check in checks)
    return JsonResponse(
        {"status": "ok" if healthy else "unhealthy", "checks": {c.name: c.as_json() for c in checks}},
        status=200 if healthy else 503,
    )
