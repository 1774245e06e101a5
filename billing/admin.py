from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing import services, webhooks
from billing.exceptions import BillingError
from billing.models import CheckoutSession, CreditPack, ReviewItem, StripeCustomer, StripeEvent


class NoDeleteAdmin(admin.ModelAdmin):
    """Rows that lead into the ledger are kept forever."""

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadOnlyAdmin(NoDeleteAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(CreditPack)
class CreditPackAdmin(NoDeleteAdmin):
    """Packs are edited freely (purchases keep their snapshot); deactivate, never delete."""

    list_display = ("name", "credits", "price_amount", "currency", "active", "order")
    list_editable = ("active", "order")
    list_filter = ("active",)
    prepopulated_fields = {"slug": ("name",)}


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ("stripe_customer_id", "user", "mode", "created_at")
    list_filter = ("mode",)
    list_select_related = ("user",)
    search_fields = ("stripe_customer_id", "user__email")


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user",
        "pack",
        "credits",
        "amount",
        "currency",
        "status",
        "payment_status",
        "mode",
    )
    list_filter = ("status", "mode", "pack")
    list_select_related = ("user", "pack")
    search_fields = (
        "id",
        "stripe_session_id",
        "stripe_payment_intent_id",
        "stripe_customer_id",
        "user__email",
    )
    date_hierarchy = "created_at"


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "type", "stripe_event_id", "object_id", "processed", "attempts")
    list_filter = ("type", "livemode", ("processed_at", admin.EmptyFieldListFilter))
    search_fields = ("stripe_event_id", "object_id")
    show_full_result_count = False
    actions = ["reprocess"]

    @admin.display(boolean=True)
    def processed(self, event: StripeEvent) -> bool:
        return event.processed_at is not None

    @admin.action(description="Process selected events again (safe: grants are keyed)")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        for event in queryset:
            try:
                outcome = webhooks.reprocess(event)
            except Exception as error:
                self.message_user(request, f"{event}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{event}: {outcome}", messages.SUCCESS)


@admin.register(ReviewItem)
class ReviewItemAdmin(NoDeleteAdmin):
    """The review queue: decide each case with an action; the note records why."""

    list_display = ("created_at", "reason", "stripe_object_id", "resolution", "resolved_by")
    list_filter = ("reason", ("resolved_at", admin.EmptyFieldListFilter), "resolution")
    list_select_related = ("resolved_by",)
    search_fields = ("stripe_object_id", "detail", "key")
    fields = (
        "reason",
        "detail",
        "checkout_session",
        "event",
        "stripe_object_id",
        "created_at",
        "resolved_at",
        "resolved_by",
        "resolution",
        "note",
    )
    readonly_fields = tuple(name for name in fields if name != "note")
    actions = ["grant_and_resolve", "dismiss"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Grant the purchase's credits and resolve")
    def grant_and_resolve(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        self._resolve(request, queryset, grant=True)

    @admin.action(description="Dismiss without credits")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        self._resolve(request, queryset, grant=False)

    def _resolve(self, request: HttpRequest, queryset: QuerySet[ReviewItem], *, grant: bool):
        for item in queryset.select_related("checkout_session__pack"):
            try:
                services.resolve_review(item, actor=request.user, grant=grant)
            except BillingError as error:
                self.message_user(request, f"{item}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{item}: resolved", messages.SUCCESS)
