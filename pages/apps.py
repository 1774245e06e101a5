from django.apps import AppConfig


class PagesConfig(AppConfig):
    """The pages that gather other apps: the landing page, the dashboard, the header balance."""

    name = "pages"
    verbose_name = "Pages"
