from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest

from config import ratelimit


class AccountAdapter(DefaultAccountAdapter):
    """Close sign-up when ACCOUNT_ALLOW_REGISTRATION is off; count limits by the real client."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return settings.ACCOUNT_ALLOW_REGISTRATION

    def get_client_ip(self, request: HttpRequest) -> str:
        """Use the same trusted-proxy reading as every other rate limit."""
        return ratelimit.client_ip(request)
