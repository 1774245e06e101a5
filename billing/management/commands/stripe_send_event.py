from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from billing import services, standin
from billing.exceptions import BillingError
from billing.models import CheckoutSession, CreditPack


class Command(BaseCommand):
    help = (
        "Send a correctly signed Checkout event to this app's webhook, as Stripe would, for a "
        "new stand-in purchase of --pack by --email (or an existing --session). Development "
        "only: refused unless BILLING_STANDIN_ENABLED is on. The app must be serving --url."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("type", choices=sorted(standin.EVENT_ACTIONS))
        parser.add_argument("--email", help="The buyer (an existing user).")
        parser.add_argument("--pack", help="The pack's slug, e.g. starter.")
        parser.add_argument("--session", help="An existing stand-in session id (cs_test_...).")
        parser.add_argument(
            "--delayed",
            action="store_true",
            help="With checkout.session.completed: a bank debit that confirms later (unpaid).",
        )
        parser.add_argument("--url", help="Webhook URL (default: SITE_URL + /webhooks/stripe/).")

    def handle(self, *args, **options) -> None:
        if not settings.BILLING_STANDIN_ENABLED:
            raise CommandError("The Checkout stand-in is off: set BILLING_STANDIN_ENABLED=true.")
        session_id = options["session"] or self._new_session(options["email"], options["pack"])
        action = standin.EVENT_ACTIONS[options["type"]]
        if action == "pay" and options["delayed"]:
            action = "pay_delayed"
        url = options["url"] or settings.SITE_URL + reverse("stripe-webhook")
        try:
            answer = standin.perform(action, session_id, webhook_url=url)
        except BillingError as error:
            raise CommandError(str(error)) from error
        checkout = CheckoutSession.objects.get(stripe_session_id=session_id)
        self.stdout.write(
            f"{options['type']} for {session_id}: webhook answered {answer.status_code} "
            f"{answer.text.strip()}; purchase is {checkout.status}"
        )
        if answer.status_code != 200:
            raise CommandError("The webhook did not accept the event.")

    def _new_session(self, email: str | None, slug: str | None) -> str:
        if not email or not slug:
            raise CommandError("Give --email and --pack for a new purchase, or --session.")
        user = get_user_model().objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user with email {email}.")
        pack = CreditPack.objects.filter(slug=slug).first()
        if pack is None:
            slugs = ", ".join(CreditPack.objects.values_list("slug", flat=True))
            raise CommandError(f"No pack {slug!r}; packs are: {slugs}.")
        try:
            return services.start_checkout(user, pack).stripe_session_id
        except BillingError as error:
            raise CommandError(str(error)) from error
