from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from config import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("livez", views.livez, name="livez"),
    path("accounts/", include("allauth.urls")),
    path("", include("pages.urls")),
    path("billing/", include("billing.urls")),
    path("generations/", include("generation.urls")),
    path("media/", include("media_store.urls")),
    path("webhooks/", include("config.webhook_urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
