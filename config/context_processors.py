from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    """Expose the product's name and the switches templates need to explain themselves."""
    return {
        "site_name": settings.SITE_NAME,
        "billing_standin_enabled": settings.BILLING_STANDIN_ENABLED,
        "local_provider_enabled": settings.LOCAL_PROVIDER_ENABLED,
        "signup_bonus_credits": settings.SIGNUP_BONUS_CREDITS,
    }
