from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from config import views

# The admin signs in through allauth (its rate limits and two-factor step), not its own form.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("livez", views.livez, name="livez"),
    path("accounts/", include("allauth.urls")),
    path("", include("pages.urls")),
    path("billing/", include("billing.urls")),
    path("generations/", include("generation.urls")),
    path("media/", include("media_store.urls")),
    path("account/", include("accounts.urls")),
    path("account/emails/", include("notifications.urls")),
    path("webhooks/", include("config.webhook_urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
