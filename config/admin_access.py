"""Two-factor sign-in for the admin: required for staff where ``ADMIN_REQUIRE_MFA`` is on.

The admin's own login hands over to allauth's (config/urls.py), which carries the rate limits
and the code step. In production a staff member without an authenticator app who opens the
admin is sent to set one up first.
"""

from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse


class StaffMFAMiddleware:
    """Send staff without an authenticator app from the admin to set one up (when required)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._must_set_up_mfa(request):
            messages.info(request, "Set up two-factor authentication to use the admin.")
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return self.get_response(request)

    @staticmethod
    def _must_set_up_mfa(request: HttpRequest) -> bool:
        user = request.user
        return (
            settings.ADMIN_REQUIRE_MFA
            and user.is_authenticated
            and user.is_staff
            and request.path.startswith(reverse("admin:index"))
            and request.path != reverse("admin:logout")
            and not is_mfa_enabled(user, types=[Authenticator.Type.TOTP])
        )
