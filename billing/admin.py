from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from billing import reviews, webhooks
from billing.exceptions import BillingError
from billing.models import (
    CheckoutSession,
    CreditPack,
    PaymentReversal,
    Plan,
    Reversal,
    ReversalStep,
    ReviewItem,
    StripeCustomer,
    StripeEvent,
    Subscription,
    SubscriptionInvoice,
)


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
        "plan",
        "credits",
        "amount",
        "currency",
        "status",
        "payment_status",
        "mode",
    )
    list_filter = ("status", "mode", "pack", "plan")
    list_select_related = ("user", "pack", "plan")
    search_fields = (
        "id",
        "stripe_session_id",
        "stripe_payment_intent_id",
        "stripe_customer_id",
        "stripe_subscription_id",
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

    def has_reprocess_event_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.reprocess_event")

    @admin.action(
        description="Process selected events again (safe: grants are keyed)",
        permissions=["reprocess_event"],
    )
    def reprocess(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        for event in queryset:
            try:
                outcome = webhooks.reprocess(event)
            except Exception as error:
                self.message_user(request, f"{event}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{event}: {outcome}", messages.SUCCESS)


class ResolveForm(forms.Form):
    """The reason is required: it is recorded on every item with the admin who decided."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    credits = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Leave empty for the default: the purchase's credits for a grant of a purchase, "
        "what was taken for other grants, the planned step or the shortfall for a clawback.",
    )


class ShortfallFilter(admin.SimpleListFilter):
    title = "shortfall"
    parameter_name = "shortfall"

    def lookups(self, request, model_admin):
        return [("yes", "Credits could not be taken back"), ("no", "None")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(shortfall__gt=0)
        if self.value() == "no":
            return queryset.filter(shortfall=0)
        return queryset


@admin.register(ReviewItem)
class ReviewItemAdmin(NoDeleteAdmin):
    """The review queue: filter, then resolve with an action; each asks for a reason."""

    list_display = (
        "created_at",
        "reason",
        "user",
        "stripe_object_id",
        "credits",
        "taken",
        "shortfall",
        "resolution",
        "resolved_by",
    )
    list_filter = (
        ("resolved_at", admin.EmptyFieldListFilter),
        "reason",
        "resolution",
        ShortfallFilter,
    )
    list_select_related = ("resolved_by", "user")
    search_fields = ("stripe_object_id", "detail", "key", "user__email")
    date_hierarchy = "created_at"
    fields = (
        "reason",
        "detail",
        "user",
        "checkout_session",
        "step",
        "event",
        "stripe_object_id",
        "credits",
        "taken",
        "shortfall",
        "created_at",
        "resolved_at",
        "resolved_by",
        "resolution",
        "resolution_credits",
        "resolution_detail",
        "note",
    )
    readonly_fields = fields
    actions = ["resolve_by_grant", "resolve_by_clawback", "resolve_by_dismissal"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_resolve_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.resolve_review")

    @admin.action(
        description="Resolve: grant credits (asks for a reason)", permissions=["resolve_review"]
    )
    def resolve_by_grant(self, request: HttpRequest, queryset: QuerySet[ReviewItem]):
        return self._resolve(request, queryset, "grant")

    @admin.action(
        description="Resolve: claw back credits, never below zero (asks for a reason)",
        permissions=["resolve_review"],
    )
    def resolve_by_clawback(self, request: HttpRequest, queryset: QuerySet[ReviewItem]):
        return self._resolve(request, queryset, "clawback")

    @admin.action(
        description="Resolve: dismiss without moving credits (asks for a reason)",
        permissions=["resolve_review"],
    )
    def resolve_by_dismissal(self, request: HttpRequest, queryset: QuerySet[ReviewItem]):
        return self._resolve(request, queryset, "dismiss")

    def _resolve(self, request: HttpRequest, queryset: QuerySet[ReviewItem], decision: str):
        form = ResolveForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(
                request,
                "billing/admin/resolve_review.html",
                {
                    **self.admin_site.each_context(request),
                    "title": f"Resolve {queryset.count()} review item(s): {decision}",
                    "items": queryset,
                    "form": form,
                    "decision": decision,
                    "action": request.POST.get("action"),
                    "opts": self.model._meta,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        items = queryset.select_related("checkout_session__pack", "step__payment")
        for item in items:
            try:
                reviews.resolve_review(
                    item,
                    actor=request.user,
                    decision=decision,
                    reason=form.cleaned_data["reason"],
                    credits=form.cleaned_data["credits"],
                )
            except BillingError as error:
                self.message_user(request, f"{item}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{item}: {item.resolution_detail}", messages.SUCCESS)
        return None


@admin.register(Plan)
class PlanAdmin(NoDeleteAdmin):
    """Plans are edited freely (each invoice grants the plan's credits then); deactivate only."""

    list_display = ("name", "credits_per_period", "price_amount", "currency", "interval", "active")
    list_editable = ("active",)
    list_filter = ("active", "interval")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = (
        "stripe_subscription_id",
        "user",
        "plan",
        "status",
        "current_period_end",
        "cancel_at_period_end",
        "mode",
    )
    list_filter = ("status", "mode", "plan")
    list_select_related = ("user", "plan")
    search_fields = ("stripe_subscription_id", "stripe_customer_id", "user__email")


@admin.register(SubscriptionInvoice)
class SubscriptionInvoiceAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "stripe_invoice_id",
        "user",
        "plan",
        "billing_reason",
        "credits",
        "status",
    )
    list_filter = ("status", "billing_reason")
    list_select_related = ("user", "plan")
    search_fields = (
        "stripe_invoice_id",
        "stripe_subscription_id",
        "stripe_payment_intent_id",
        "user__email",
    )


class ReversalStepInline(admin.TabularInline):
    model = ReversalStep
    fields = ("key", "action", "credits", "status", "ledger_status", "taken", "shortfall")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReversalInline(admin.TabularInline):
    model = Reversal
    fields = ("kind", "stripe_id", "stripe_amount", "stripe_status", "outcome", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(PaymentReversal)
class PaymentReversalAdmin(ReadOnlyAdmin):
    """Each payment's refunds and disputes, the credits they take back, and the ledger steps."""

    list_display = (
        "created_at",
        "stripe_payment_intent_id",
        "user",
        "amount_paid",
        "refunded",
        "disputed",
        "credits_granted",
        "credits_target",
        "credits_taken",
        "credits_short",
    )
    list_select_related = ("user",)
    search_fields = ("stripe_payment_intent_id", "stripe_invoice_id", "user__email")
    inlines = [ReversalInline, ReversalStepInline]
