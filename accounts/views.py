"""Account pages: your data (export), leaving, and a second confirmation link."""

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import exports, services
from accounts.forms import DeleteAccountForm
from accounts.selectors import recent_exports


@require_POST
def resend_verification(request: HttpRequest) -> HttpResponse:
    """Send the confirmation link again; the answer never says whether the address exists."""
    services.resend_verification(request, request.POST.get("email", ""))
    messages.success(
        request,
        "If that address is waiting for confirmation, a new link is on its way.",
    )
    return redirect("account_email_verification_sent")


@login_required
@require_GET
def data(request: HttpRequest) -> HttpResponse:
    """Your data: ask for an export, download a ready one, or go to account deletion."""
    return render(
        request,
        "accounts/data.html",
        {"exports": recent_exports(request.user), "export_hours": settings.EXPORT_RETENTION_HOURS},
    )


@login_required
@require_POST
def export(request: HttpRequest) -> HttpResponse:
    """Start building a data export (a second click returns the one in progress)."""
    services.request_export(request.user)
    messages.success(request, "Your export is being prepared. We will email you when it is ready.")
    return redirect("accounts:data")


@never_cache
@login_required
@require_GET
def download_export(request: HttpRequest, export_id: UUID) -> HttpResponse:
    """Send the owner to a fresh five-minute URL for a ready export."""
    url = exports.download_url(request.user, export_id)
    if url is None:
        raise Http404("This export is not available.")
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def delete_account(request: HttpRequest) -> HttpResponse:
    """Delete the account after the password is entered again."""
    form = DeleteAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.delete_account(request.user, password=form.cleaned_data["password"])
        except services.AccountError as error:
            form.add_error("password" if "password" in str(error) else None, str(error))
        else:
            logout(request)
            messages.success(request, "Your account is deleted. Thank you for trying us.")
            return redirect("pages:home")
    return render(
        request, "accounts/delete.html", {"form": form}, status=400 if form.errors else 200
    )
