"""WSGI entry point; in production it refuses to serve when a system check fails."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from config.checks import refuse_unsafe_production  # noqa: E402

refuse_unsafe_production()
