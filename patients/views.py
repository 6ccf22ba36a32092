import mimetypes

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from patients import health


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


@require_GET
def practice_logo(request: HttpRequest, name: str):
    """Practice logos are public (they appear in emails), so they are served in production too,
    from this one folder only; other uploads under MEDIA_ROOT are never served."""
    path = f"practice-logos/{name}"
    if "/" in name or name.startswith(".") or not default_storage.exists(path):
        raise Http404("No such logo.")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if not content_type.startswith("image/"):
        raise Http404("No such logo.")
    response = FileResponse(default_storage.open(path, "rb"), content_type=content_type)
    response["Cache-Control"] = "public, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response
