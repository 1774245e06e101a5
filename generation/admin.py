"""Admin for generations, their timeline and callbacks; no deletion (rows lead into the ledger).

Actions on stuck generations go through the same services and transitions as the workers.
"""

from django.contrib import admin, messages
from django.utils import timezone

from generation.models import Generation, GenerationEvent, ProviderCallback
from generation.services.reconcile import redrive


class GenerationEventInline(admin.TabularInline):
    model = GenerationEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "name", "from_status", "to_status", "message", "detail")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "model_key", "status", "pending_action", "cost", "created_at")
    list_filter = ("status", "provider", "model_key")
    search_fields = ("id", "provider_job_id", "user__email")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = [f.name for f in Generation._meta.fields]
    inlines = [GenerationEventInline]
    actions = ["redrive_now"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_redrive_generation_permission(self, request) -> bool:
        return request.user.has_perm("generation.redrive_generation")

    @admin.action(
        description="Re-drive now (reset attempts and enqueue the next step)",
        permissions=["redrive_generation"],
    )
    def redrive_now(self, request, queryset) -> None:
        count = queryset.exclude(next_check_at=None, pending_action=None).update(
            next_check_at=timezone.now(), redrive_attempts=0, alerted_at=None
        )
        stuck = queryset.filter(next_check_at=None, status__in=("dispatched", "processing"))
        count += stuck.update(next_check_at=timezone.now(), redrive_attempts=0, alerted_at=None)
        redrive()
        messages.info(request, f"Re-drive scheduled for {count} generation(s).")


@admin.register(ProviderCallback)
class ProviderCallbackAdmin(admin.ModelAdmin):
    list_display = ("delivery_id", "provider", "reported_status", "generation", "received_at")
    list_filter = ("provider", "reported_status")
    search_fields = ("delivery_id", "provider_job_id")
    raw_id_fields = ("generation",)
    readonly_fields = [f.name for f in ProviderCallback._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
