import secrets

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Create (or reset the password of) the verified demo user for local development and print "
        "its credentials. Refused in production."
    )

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("The demo user is for development only.")
        email = settings.DEMO_USER_EMAIL
        password = secrets.token_urlsafe(12)
        user, created = get_user_model().objects.get_or_create(email=email)
        user.set_password(password)
        user.is_active = True
        user.save()
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        verb = "Created" if created else "Reset"
        self.stdout.write(f"{verb} demo user: {email} / {password}")
