"""Read-only admin over the journal, holds and balances; corrections only through ledger.api.

Every page reads as the staff reader role (row-level security), rendered inside that scope.
Nothing can be added, changed or deleted here; the only write is "adjust balance", which calls
``ledger.api.adjust`` with the admin as actor and a required reason.
"""

import uuid
from functools import cached_property

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ledger import api, selectors
from ledger.exceptions import LedgerError
from ledger.models import Account, Entry, EntryKind, Hold


class FixedCountPaginator(Paginator):
    """Never COUNT(*) the journal: report a fixed number of rows, like a huge log table."""

    @cached_property
    def count(self) -> int:
        return 10_000


def _user_ids_for(term: str) -> list[uuid.UUID]:
    return list(
        get_user_model()
        .objects.filter(email__icontains=term.strip())
        .values_list("pk", flat=True)[:50]
    )


class StaffReadOnlyAdmin(admin.ModelAdmin):
    """Render every page as the staff reader role and refuse every write."""

    actions = None
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        # Email search needs the users table, which the reader role cannot read: resolve first.
        query = request.GET.get("q", "")
        request.ledger_account_ids = _user_ids_for(query) if "@" in query else []
        with api.reading_as_staff():
            response = super().changelist_view(request, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()
        return response

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        with api.reading_as_staff():
            response = super().change_view(request, object_id, form_url, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()
        return response

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        ids = getattr(request, "ledger_account_ids", [])
        if ids:
            return queryset.filter(account_id__in=ids), False
        return super().get_search_results(request, queryset, search_term)


@admin.register(Entry)
class EntryAdmin(StaffReadOnlyAdmin):
    list_display = (
        "entry_id",
        "created_at",
        "account_id",
        "kind",
        "amount",
        "available_delta",
        "held_delta",
        "available_after",
        "held_after",
        "idempotency_key",
        "source",
    )
    list_filter = ("kind", "created_at")
    search_fields = ("=idempotency_key", "=account_id", "=hold_id")
    search_help_text = "Email, exact key, account id or hold id."
    paginator = FixedCountPaginator
    show_full_result_count = False
    date_hierarchy = None


@admin.register(Hold)
class HoldAdmin(StaffReadOnlyAdmin):
    list_display = (
        "reference",
        "account_id",
        "amount",
        "captured",
        "released",
        "status",
        "late",
        "late_amount",
        "expires_at",
        "created_at",
        "settled_at",
    )
    list_filter = ("status", "late", "created_at")
    search_fields = ("=reference",)
    search_help_text = "Email, exact reference or account id."
    paginator = FixedCountPaginator
    show_full_result_count = False

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        # ledger_hold has no per-account index: an account's holds are found through their
        # `hold` entries, which the journal's (account_id, account_version) index serves.
        ids = getattr(request, "ledger_account_ids", [])
        if not ids:
            try:
                ids = [uuid.UUID(search_term.strip())]
            except ValueError:
                return super().get_search_results(request, queryset, search_term)
        hold_ids = Entry.objects.filter(account_id__in=ids, kind=EntryKind.HOLD).values("hold_id")
        return queryset.filter(hold_id__in=hold_ids), False


class AdjustForm(forms.Form):
    """An admin correction: the key makes a double submit a duplicate, not a second adjustment."""

    account_id = forms.UUIDField(widget=forms.HiddenInput)
    key = forms.CharField(widget=forms.HiddenInput, max_length=200)
    delta = forms.IntegerField(help_text="Credits to add (positive) or remove (negative).")
    reason = forms.CharField(
        widget=forms.Textarea, max_length=1000, help_text="Required; kept in the journal."
    )

    def clean_delta(self) -> int:
        delta = self.cleaned_data["delta"]
        if delta == 0 or abs(delta) > api.MAX_AMOUNT:
            raise forms.ValidationError("Enter a non-zero amount.")
        return delta

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


@admin.register(Account)
class AccountAdmin(StaffReadOnlyAdmin):
    list_display = ("account_id", "available", "held", "version", "updated_at")
    search_fields = ("=account_id",)
    search_help_text = "Email or account id."
    actions = ["adjust_balance"]
    show_full_result_count = False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "health/",
                self.admin_site.admin_view(self.health_view),
                name="{}_{}_health".format(*info),
            ),
            path(
                "<uuid:account_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="{}_{}_adjust".format(*info),
            ),
            *super().get_urls(),
        ]

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("adjust_balance", None)
        return actions

    @admin.action(description="Adjust balance (one account, with a reason)")
    def adjust_balance(self, request: HttpRequest, queryset) -> HttpResponse | None:
        accounts = list(queryset.values_list("account_id", flat=True)[:2])
        if len(accounts) != 1:
            self.message_user(request, "Select exactly one account to adjust.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:ledger_account_adjust", args=[accounts[0]]))

    def adjust_view(self, request: HttpRequest, account_id: uuid.UUID) -> HttpResponse:
        """Show and apply the adjust form; the write is ledger.api.adjust, outside reader scope."""
        if not request.user.is_superuser:
            return HttpResponseRedirect(reverse("admin:ledger_account_changelist"))
        if request.method == "POST":
            form = AdjustForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    result = api.adjust(
                        data["account_id"],
                        data["delta"],
                        key=data["key"],
                        actor=f"admin:{request.user.email}",
                        reason=data["reason"],
                    )
                except LedgerError as exc:
                    form.add_error(None, str(exc))
                else:
                    level = (
                        messages.SUCCESS
                        if result.status
                        in (api.AdjustOutcome.ADJUSTED, api.AdjustOutcome.DUPLICATE)
                        else messages.ERROR
                    )
                    self.message_user(
                        request,
                        f"Adjustment {result.status}; available is now {result.available}.",
                        level,
                    )
                    return HttpResponseRedirect(reverse("admin:ledger_account_changelist"))
        else:
            form = AdjustForm(
                initial={"account_id": account_id, "key": f"admin-adjust:{uuid.uuid4()}"}
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Adjust balance",
            "form": form,
            "account_id": account_id,
            "balance": api.balance(account_id),
        }
        return TemplateResponse(request, "ledger/admin/adjust.html", context)

    def health_view(self, request: HttpRequest) -> HttpResponse:
        """Show ledger_check() violations and the ledger totals."""
        violations, totals = api.check(), selectors.totals()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Ledger health",
            "violations": violations,
            "totals": totals,
        }
        return TemplateResponse(request, "ledger/admin/health.html", context)
