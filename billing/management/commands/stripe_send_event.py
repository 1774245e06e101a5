from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from billing import standin_events, subscriptions
from billing.checkout import start_checkout
from billing.exceptions import BillingError
from billing.gateways.standin import invoice_payment_intent
from billing.models import CheckoutSession, CreditPack, Plan, SubscriptionInvoice

OTHER_TYPES = (
    "invoice.paid",
    "customer.subscription.deleted",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
)


class Command(BaseCommand):
    help = (
        "Send a correctly signed Stripe event to this app's webhook, as Stripe would. Checkout "
        "events: a new stand-in purchase of --pack (or subscription to --plan) by --email, or an "
        "existing --session. invoice.paid renews and customer.subscription.deleted cancels "
        "--subscription. charge.refunded (--amount: Stripe's cumulative amount_refunded, default "
        "in full) and charge.dispute.created|closed (--outcome won|lost) name --payment-intent. "
        "Development only: refused unless BILLING_STANDIN_ENABLED is on. The app must be serving "
        "--url."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("type", choices=sorted([*standin_events.EVENT_ACTIONS, *OTHER_TYPES]))
        parser.add_argument("--email", help="The buyer (an existing user).")
        parser.add_argument("--pack", help="The pack's slug, e.g. starter.")
        parser.add_argument("--plan", help="A plan's slug, e.g. monthly: subscribe.")
        parser.add_argument("--session", help="An existing stand-in session id (cs_test_...).")
        parser.add_argument("--subscription", help="A stand-in subscription id (sub_standin_...).")
        parser.add_argument("--payment-intent", help="A stand-in payment intent (pi_standin_...).")
        parser.add_argument("--amount", type=int, help="charge.refunded: total refunded so far.")
        parser.add_argument("--outcome", choices=["won", "lost"], default="won")
        parser.add_argument(
            "--delayed",
            action="store_true",
            help="With checkout.session.completed: a bank debit that confirms later (unpaid).",
        )
        parser.add_argument("--url", help="Webhook URL (default: SITE_URL + /webhooks/stripe/).")

    def handle(self, *args, **options) -> None:
        if not settings.BILLING_STANDIN_ENABLED:
            raise CommandError("The Checkout stand-in is off: set BILLING_STANDIN_ENABLED=true.")
        url = options["url"] or settings.SITE_URL + reverse("stripe-webhook")
        kind = options["type"]
        try:
            if kind in OTHER_TYPES:
                answer = self._send_other(kind, options, url)
                self.stdout.write(
                    f"{kind}: webhook answered {answer.status_code} {answer.text}"
                    + (_paid_by(options["subscription"]) if kind == "invoice.paid" else "")
                )
            else:
                session_id = options["session"] or self._new_session(options)
                action = standin_events.EVENT_ACTIONS[kind]
                if action == "pay" and options["delayed"]:
                    action = "pay_delayed"
                answer = standin_events.perform(action, session_id, webhook_url=url)
                checkout = CheckoutSession.objects.get(stripe_session_id=session_id)
                self.stdout.write(
                    f"{kind} for {session_id}: webhook answered {answer.status_code} "
                    f"{answer.text.strip()}; purchase is {checkout.status}"
                    + (
                        f", subscription {checkout.stripe_subscription_id}"
                        if checkout.stripe_subscription_id
                        else ""
                    )
                    + (
                        f", payment intent {checkout.stripe_payment_intent_id}"
                        if checkout.stripe_payment_intent_id
                        else _paid_by(checkout.stripe_subscription_id)
                    )
                )
        except BillingError as error:
            raise CommandError(str(error)) from error
        if answer.status_code != 200:
            raise CommandError("The webhook did not accept the event.")

    def _send_other(self, kind: str, options: dict, url: str):
        if kind in ("invoice.paid", "customer.subscription.deleted"):
            subscription = options["subscription"]
            if not subscription:
                raise CommandError(f"{kind} needs --subscription sub_standin_...")
            if kind == "invoice.paid":
                return standin_events.renew(subscription, webhook_url=url)
            return standin_events.cancel_subscription(subscription, webhook_url=url)
        payment_intent = options["payment_intent"]
        if not payment_intent:
            raise CommandError(f"{kind} needs --payment-intent pi_standin_...")
        if kind == "charge.refunded":
            return standin_events.refund(
                payment_intent, amount_refunded=options["amount"], webhook_url=url
            )
        status = "needs_response" if kind == "charge.dispute.created" else options["outcome"]
        return standin_events.dispute(payment_intent, status=status, webhook_url=url)

    def _new_session(self, options: dict) -> str:
        email, slug, plan_slug = options["email"], options["pack"], options["plan"]
        if not email or not (slug or plan_slug):
            raise CommandError("Give --email and --pack (or --plan) for a new one, or --session.")
        user = get_user_model().objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user with email {email}.")
        if plan_slug:
            plan = Plan.objects.filter(slug=plan_slug).first()
            if plan is None:
                slugs = ", ".join(Plan.objects.values_list("slug", flat=True))
                raise CommandError(f"No plan {plan_slug!r}; plans are: {slugs}.")
            return subscriptions.start_subscription(user, plan).stripe_session_id
        pack = CreditPack.objects.filter(slug=slug).first()
        if pack is None:
            slugs = ", ".join(CreditPack.objects.values_list("slug", flat=True))
            raise CommandError(f"No pack {slug!r}; packs are: {slugs}.")
        return start_checkout(user, pack).stripe_session_id


def _paid_by(subscription_id: str) -> str:
    """Name the latest invoice of a stand-in subscription and the intent a refund would name."""
    invoice = (
        SubscriptionInvoice.objects.filter(stripe_subscription_id=subscription_id)
        .order_by("-created_at")
        .first()
        if subscription_id
        else None
    )
    if invoice is None:
        return ""
    intent = invoice_payment_intent(invoice.stripe_invoice_id)
    return f"; invoice {invoice.stripe_invoice_id} paid by payment intent {intent}"
