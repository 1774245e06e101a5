from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billing import api as billing
from config.health import ready, run_checks
from generation import api as generation


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Landing page: what the product is, live prices and a way in."""
    # Prices come from the same function that charges, so the page can never disagree with a bill.
    models = [(spec, generation.price(spec.key)) for spec in generation.catalogue_models()]
    cheapest = min((cost for _, cost in models), default=0)
    packs = [
        (pack, pack.credits // cheapest if cheapest else None) for pack in billing.active_packs()
    ]
    return render(
        request,
        "pages/home.html",
        {
            "models": models,
            "packs": packs,
            "cheapest": cheapest,
            "signup_bonus": settings.SIGNUP_BONUS_CREDITS,
        },
    )


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
