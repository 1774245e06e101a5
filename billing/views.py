"""Billing pages, the buy and subscribe actions, the portal and the Checkout stand-in."""

from __future__ import annotations

import csv
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import fulfilment, selectors, standin_events, statement, subscriptions
from billing.checkout import start_checkout
from billing.exceptions import BillingError, GatewayError, PriceMismatch
from billing.gateways import current_mode, payments_configured
from billing.gateways.standin import StandinGateway
from billing.models import CheckoutSession
from config import ratelimit
from config.ops import ops_alert
from ledger.api import LedgerError

logger = logging.getLogger(__name__)

# The success page polls; it asks Stripe about one session at most this often.
SUCCESS_SYNC_SECONDS = 5


def see_other(url: str) -> HttpResponseRedirect:
    """Redirect a POST with 303 so the browser follows with GET."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    """The billing page: balances, packs, the balance chart, purchases and the statement."""
    before = _int_or_none(request.GET.get("before"))
    context = {
        "balance": selectors.balance(request.user),
        "packs": selectors.packs_for_sale(),
        "payments_configured": payments_configured(),
        "chart": selectors.balance_chart(request.user),
        "statement": statement.statement_page(request.user, before=before),
        "paged": before is not None,
        "purchases": statement.recent_purchases(request.user, limit=5),
        "plans": selectors.plans_for_sale(),
        "subscription": selectors.current_subscription(request.user),
    }
    return render(request, "billing/overview.html", context)


def _too_many_checkouts(request: HttpRequest, verdict: ratelimit.Verdict) -> HttpResponse:
    messages.error(
        request, f"Too many checkout attempts. Try again in {verdict.retry_after} seconds."
    )
    return see_other(reverse("billing:overview"))


limit_checkouts = ratelimit.limit_per_user(
    "buy", "BILLING_BUY_RATE_LIMIT", refused=_too_many_checkouts
)


@login_required
@require_POST
@limit_checkouts
def buy(request: HttpRequest, pack_id: int | None = None) -> HttpResponse:
    """Start Checkout for one pack and send the buyer to Stripe (or the stand-in) with 303."""
    pack_id = pack_id or _int_or_none(request.POST.get("pack"))
    pack = selectors.packs_for_sale().filter(pk=pack_id).first() if pack_id else None
    return _start_checkout(request, pack, noun="pack", start=start_checkout)


@login_required
@require_POST
@limit_checkouts
def subscribe(request: HttpRequest) -> HttpResponse:
    """Start subscription-mode Checkout for one plan and send the buyer there with 303."""
    plan_id = _int_or_none(request.POST.get("plan"))
    plan = selectors.plans_for_sale().filter(pk=plan_id).first() if plan_id else None
    return _start_checkout(request, plan, noun="plan", start=subscriptions.start_subscription)


def _start_checkout(request: HttpRequest, item, *, noun: str, start) -> HttpResponse:
    """Start Checkout for a pack or plan, and turn every failure into a message."""
    back = reverse("billing:overview")
    if item is None:
        messages.error(request, f"That {noun} is not on sale. Pick one of the {noun}s below.")
        return see_other(back)
    try:
        checkout = start(request.user, item, submission_key=request.POST.get("submission_key"))
    except PriceMismatch as error:
        ops_alert(f"Billing: {noun} price mismatch", str(error), **{noun: item.slug})
        messages.error(request, f"This {noun} cannot be bought right now. Nothing was charged.")
        return see_other(back)
    except GatewayError:
        logger.exception("could not start checkout for %s %s", noun, item.slug)
        messages.error(request, "Stripe could not be reached. Nothing was charged; try again.")
        return see_other(back)
    except BillingError as error:
        messages.error(request, str(error))
        return see_other(back)
    return see_other(checkout.url)


@login_required
@require_POST
def portal(request: HttpRequest) -> HttpResponse:
    """Open Stripe's customer portal (manage or cancel the subscription) with 303."""
    return_url = settings.SITE_URL + reverse("billing:overview")
    try:
        url = subscriptions.portal_url(request.user, return_url=return_url)
    except GatewayError:
        logger.exception("could not open the customer portal")
        messages.error(request, "Stripe could not be reached. Try again in a moment.")
        return see_other(reverse("billing:overview"))
    except BillingError as error:
        messages.info(request, str(error))
        return see_other(reverse("billing:overview"))
    return see_other(url)


@login_required
@require_GET
def success(request: HttpRequest) -> HttpResponse:
    """Show the purchase's state, fulfilling it if Stripe already says paid (owner only)."""
    checkout = selectors.purchase_for_user(
        request.user, stripe_session_id=request.GET.get("session_id", "")
    )
    if checkout is None:
        raise Http404("No such purchase.")
    if (
        checkout.status == CheckoutSession.Status.OPEN
        and checkout.mode == current_mode()
        and payments_configured()
        and cache.add(f"billing:success-sync:{checkout.pk}", 1, SUCCESS_SYNC_SECONDS)
    ):
        try:
            fulfilment.fulfil_checkout(checkout.stripe_session_id, source="success_page")
        except (BillingError, LedgerError):
            # The webhook and reconciliation will get there; the page keeps showing progress.
            logger.exception("success page could not fulfil %s", checkout.stripe_session_id)
        checkout.refresh_from_db()
    context = {"checkout": checkout, "balance": selectors.balance(request.user)}
    if request.headers.get("HX-Request"):
        return render(request, "billing/partials/checkout_status.html", context)
    return render(request, "billing/success.html", context)


@login_required
@require_GET
def cancel(request: HttpRequest) -> HttpResponse:
    """Tell the buyer nothing was charged."""
    checkout = selectors.purchase_for_user(request.user, pk=request.GET.get("checkout"))
    return render(request, "billing/cancel.html", {"checkout": checkout})


@login_required
@require_GET
def export(request: HttpRequest) -> StreamingHttpResponse:
    """Stream the user's whole ledger as CSV."""
    writer = csv.writer(_Echo())
    rows = (writer.writerow(row) for row in selectors.ledger_csv_rows(request.user))
    filename = f"ledger-{timezone.localdate().isoformat()}.csv"
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_http_methods(["GET", "POST"])
def standin_checkout(request: HttpRequest, session_id: str) -> HttpResponse:
    """The local Checkout page (test mode only): pay by sending a signed event to the webhook."""
    if not settings.BILLING_STANDIN_ENABLED:
        raise Http404("The Checkout stand-in is off.")
    if not request.user.is_authenticated:
        return HttpResponseRedirect(f"{reverse(settings.LOGIN_URL)}?next={request.path}")
    checkout = selectors.purchase_for_user(request.user, stripe_session_id=session_id)
    if checkout is None or checkout.mode != current_mode():
        raise Http404("No such stand-in session.")
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action not in standin_events.ACTIONS or action == "expire":
            messages.error(request, "Unknown stand-in action.")
            return see_other(request.path)
        webhook_url = request.build_absolute_uri(reverse("stripe-webhook"))
        try:
            answer = standin_events.perform(action, session_id, webhook_url=webhook_url)
        except GatewayError as error:
            messages.error(request, str(error))
            return see_other(request.path)
        if answer.status_code != 200:
            messages.error(
                request, f"The webhook answered {answer.status_code}: {answer.text[:200]}"
            )
            return see_other(request.path)
        return see_other(f"{reverse('billing:success')}?session_id={session_id}")
    session = StandinGateway().retrieve_checkout_session(session_id)
    return render(
        request,
        "billing/standin.html",
        {"checkout": checkout, "session": session, "customer_email": request.user.email},
    )


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
