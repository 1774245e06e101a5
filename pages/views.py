"""The landing page and the signed-in dashboard: thin views over ``pages.selectors``."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from pages.selectors import dashboard_for, landing_offer


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Landing page: what the product is, live prices and a way in."""
    return render(request, "pages/home.html", landing_offer())


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The signed-in home: balances and recent generations."""
    return render(request, "pages/dashboard.html", {"dashboard": dashboard_for(request.user)})
