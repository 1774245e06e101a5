from django.contrib import admin

from media_store.models import Asset


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    """Read-only: assets are created by ingest and removed through media_store.api.delete."""

    list_display = ("id", "content_type", "size", "owner_id", "generation_id", "index", "created")
    list_filter = ("content_type", "withheld")
    search_fields = ("=id", "=owner_id", "=generation_id", "sha256")
    date_hierarchy = "created"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
