from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.health import run_checks


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Landing page: what the product is, live prices and a way in."""
    return render(request, "pages/home.html")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Report each dependency; 503 names the failing parts so a load balancer can act."""
    parts = run_checks()
    failing = sorted(name for name, result in parts.items() if not result["ok"])
    body = {"ok": not failing, "failing": failing, "parts": parts}
    return JsonResponse(body, status=503 if failing else 200)
