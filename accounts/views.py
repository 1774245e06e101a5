from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.selectors import dashboard_for


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The signed-in home: balances and recent generations."""
    return render(request, "accounts/dashboard.html", {"dashboard": dashboard_for(request.user)})
