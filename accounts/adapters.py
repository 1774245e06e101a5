from dataclasses import dataclass

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from config import ratelimit
from config.emails import absolute_url, site_context


@dataclass(frozen=True)
class ConfiguredSite:
    """Stands in for ``django.contrib.sites``' Site: the name and domain come from settings."""

    name: str
    domain: str


class AccountAdapter(DefaultAccountAdapter):
    """Close sign-up when ACCOUNT_ALLOW_REGISTRATION is off; count limits by the real client;
    mail as the configured site."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return settings.ACCOUNT_ALLOW_REGISTRATION

    def get_client_ip(self, request: HttpRequest) -> str:
        """Use the same trusted-proxy reading as every other rate limit."""
        return ratelimit.client_ip(request)

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Render allauth's mail with the app's layout, naming the site from settings.

        allauth builds some links from the request's host; they are moved onto SITE_URL so a
        mail never points at whatever host the request arrived on.
        """
        site = site_context()
        context = {
            **{key: self._on_site(value) for key, value in context.items()},
            **site,
            "current_site": ConfiguredSite(site["site_name"], site["site_domain"]),
        }
        super().send_mail(template_prefix, email, context)

    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation) -> str:
        return absolute_url(reverse("account_confirm_email", args=[emailconfirmation.key]))

    def _on_site(self, value: object) -> object:
        request = allauth_context.request
        if not isinstance(value, str) or request is None:
            return value
        origin = request.build_absolute_uri("/")
        if value.startswith(origin):
            return absolute_url("/" + value.removeprefix(origin))
        return value
