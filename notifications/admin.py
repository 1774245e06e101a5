from django.contrib import admin

from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only: what was mailed to whom, and whether it went."""

    list_display = ("kind", "user", "status", "attempts", "created_at", "sent_at")
    list_filter = ("kind", "status")
    list_select_related = ("user",)
    search_fields = ("user__email", "key")
    readonly_fields = [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
