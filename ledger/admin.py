"""Read-only admin over the journal, holds and balances; corrections only through ledger.api.

Rows are read as the staff reader role (row-level security); pages render outside that scope.
Nothing can be added, changed or deleted here; the only write is "adjust balance", which calls
``ledger.api.adjust`` with the admin as actor and a required reason. Adjusting needs the
``ledger.adjust_account`` permission and the health page ``ledger.view_ledger_health``; the
"Ledger operator" group (ledger/groups.py) holds both plus viewing.
"""

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from functools import cached_property

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ledger import api, selectors
from ledger.exceptions import LedgerError
from ledger.models import Account, Entry, EntryKind, Hold

# Counting stops here: exact for any filtered list, bounded on a journal of millions of rows.
COUNT_CAP = 100_000
# Admin adjustments are keyed in their own namespace, never a purchase's or a generation's.
ADJUST_KEY_PREFIX = "admin-adjust:"
ADJUST_NONCE_SESSION_KEY = "ledger_adjust_nonce"


class CappedCountPaginator(Paginator):
    """Count at most COUNT_CAP + 1 rows (one bounded subquery), never the whole journal."""

    @cached_property
    def count(self) -> int:
        return self.object_list[: COUNT_CAP + 1].count()


def _user_ids_for(term: str) -> list[uuid.UUID]:
    return list(
        get_user_model()
        .objects.filter(email__icontains=term.strip())
        .values_list("pk", flat=True)[:50]
    )


def _email_of(account_id: uuid.UUID) -> str:
    user = get_user_model().objects.filter(pk=account_id).values_list("email", flat=True)
    return user.first() or ""


def _attach_emails(rows: Iterable) -> None:
    """Set ``owner_email`` on each row from the users table (outside the reader scope)."""
    rows = list(rows)
    ids = {row.account_id for row in rows}
    emails = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "email"))
    for row in rows:
        row.owner_email = emails.get(row.account_id, "")


class StaffReadOnlyAdmin(admin.ModelAdmin):
    """Read every row as the staff reader role, render outside it, and refuse every write.

    Only the reads run inside ``reading_as_staff()`` (results are fetched there); everything
    else, rendering included, runs as the runtime role, which can read the users table for
    emails and Django's own tables (content types, the admin log).
    """

    actions = None
    list_per_page = 50
    paginator = CappedCountPaginator
    show_full_result_count = False
    readonly_fields = ("owner",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Account", ordering="account_id")
    def owner(self, row) -> str:
        return getattr(row, "owner_email", "") or f"{row.account_id} (no user)"

    def get_changelist_instance(self, request: HttpRequest):
        # Email search needs the users table, which the reader role cannot read: resolve first.
        query = request.GET.get("q", "")
        request.ledger_account_ids = _user_ids_for(query) if "@" in query else []
        with api.reading_as_staff():
            changelist = super().get_changelist_instance(request)
            changelist.result_list = list(changelist.result_list)
        _attach_emails(changelist.result_list)
        return changelist

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        with api.reading_as_staff():
            row = super().get_object(request, object_id, from_field)
        if row is not None:
            _attach_emails([row])
        return row

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
        "owner",
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


@admin.register(Hold)
class HoldAdmin(StaffReadOnlyAdmin):
    list_display = (
        "reference",
        "owner",
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
    """An admin correction; the account comes from the URL and the key from the server."""

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


def adjust_key(nonce: str, account_id: uuid.UUID, delta: int, reason: str) -> str:
    """Return the ledger key of one intended adjustment, in the admin's own namespace.

    The nonce is fixed for the session when the form is first rendered, so the same correction
    sent twice (a double click, or Back and submit again, which re-renders the form) is one
    key and applies once; a different amount or reason is a different adjustment.
    """
    digest = hashlib.sha256(f"{nonce}\0{account_id}\0{delta}\0{reason}".encode()).hexdigest()
    return f"{ADJUST_KEY_PREFIX}{digest}"


def _adjust_nonce(request: HttpRequest) -> str:
    nonce = request.session.get(ADJUST_NONCE_SESSION_KEY)
    if not nonce:
        nonce = request.session[ADJUST_NONCE_SESSION_KEY] = secrets.token_hex(16)
    return nonce


@admin.register(Account)
class AccountAdmin(StaffReadOnlyAdmin):
    list_display = ("owner", "available", "held", "version", "updated_at")
    search_fields = ("=account_id",)
    search_help_text = "Email or account id."
    actions = ["adjust_balance"]

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

    def has_adjust_account_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ledger.adjust_account")

    @admin.action(
        description="Adjust balance (one account, with a reason)",
        permissions=["adjust_account"],
    )
    def adjust_balance(self, request: HttpRequest, queryset) -> HttpResponse | None:
        with api.reading_as_staff():
            accounts = list(queryset.values_list("account_id", flat=True)[:2])
        if len(accounts) != 1:
            self.message_user(request, "Select exactly one account to adjust.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:ledger_account_adjust", args=[accounts[0]]))

    def adjust_view(self, request: HttpRequest, account_id: uuid.UUID) -> HttpResponse:
        """Show and apply the adjust form; the write is ledger.api.adjust as the admin."""
        if not self.has_adjust_account_permission(request):
            raise PermissionDenied
        nonce = _adjust_nonce(request)
        form = AdjustForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            delta, reason = form.cleaned_data["delta"], form.cleaned_data["reason"]
            try:
                result = api.adjust(
                    account_id,
                    delta,
                    key=adjust_key(nonce, account_id, delta, reason),
                    actor=f"admin:{request.user.email}",
                    reason=reason,
                )
            except LedgerError as exc:
                form.add_error(None, str(exc))
            else:
                if result.status == api.AdjustOutcome.DUPLICATE:
                    text = (
                        "This adjustment was already applied, so it was not applied again; "
                        "change the amount or the reason to make another."
                    )
                else:
                    text = f"Adjustment {result.status}; available is now {result.available}."
                level = (
                    messages.SUCCESS
                    if result.status == api.AdjustOutcome.ADJUSTED
                    else messages.WARNING
                )
                self.message_user(request, text, level)
                return HttpResponseRedirect(reverse("admin:ledger_account_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Adjust balance",
            "form": form,
            "account_id": account_id,
            "email": _email_of(account_id),
            "balance": api.balance(account_id),
        }
        return TemplateResponse(request, "ledger/admin/adjust.html", context)

    def health_view(self, request: HttpRequest) -> HttpResponse:
        """Show ledger_check() violations and the ledger totals."""
        if not request.user.has_perm("ledger.view_ledger_health"):
            raise PermissionDenied
        violations, totals = api.check(), selectors.totals()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Ledger health",
            "violations": violations,
            "totals": totals,
        }
        return TemplateResponse(request, "ledger/admin/health.html", context)
