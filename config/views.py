from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billing import api as billing
from config.health import run_checks
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
    """Report each dependency; 503 names the failing parts so a load balancer can act."""
    parts = run_checks()
    failing = sorted(name for name, result in parts.items() if not result["ok"])
    body = {"ok": not failing, "failing": failing, "parts": parts}
    return JsonResponse(body, status=503 if failing else 200)
