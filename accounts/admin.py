from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    """Users can be deactivated but never deleted: their ledger history must stay whole.

    A user who deleted their account shows as ``deleted-<id>@invalid`` with ``deleted_at``.
    """

    ordering = ("-date_joined",)
    list_display = ("email", "name", "is_active", "is_staff", "date_joined", "deleted_at")
    list_filter = (
        "is_active",
        "is_staff",
        "is_superuser",
        ("deleted_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("email", "name", "id")
    readonly_fields = ("id", "date_joined", "last_login", "deactivated_at", "deleted_at")
    actions = ["deactivate_users"]
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("Profile", {"fields": ("name",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined", "deactivated_at", "deleted_at")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(
        description="Deactivate selected users (they keep their history)", permissions=["change"]
    )
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = 0
        for user in queryset.filter(is_active=True):
            user.deactivate()
            count += 1
        self.message_user(request, f"Deactivated {count} user(s).", messages.SUCCESS)
