from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users: email login, verification, deactivation (never deletion)."""

    name = "accounts"
    verbose_name = "Accounts"
