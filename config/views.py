from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.health import ready, run_checks


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Readiness: 503 only while the database does not answer; other parts are reported."""
    parts = run_checks()
    degraded = sorted(name for name, result in parts.items() if not result["ok"])
    ok = ready(parts)
    body = {"ok": ok, "degraded": degraded, "parts": parts}
    return JsonResponse(body, status=200 if ok else 503)


@never_cache
@require_GET
def livez(request: HttpRequest) -> JsonResponse:
    """Liveness: the process serves requests; touches no database, cache or storage."""
    return JsonResponse({"ok": True})
