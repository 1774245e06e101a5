"""WSGI entry point; in production it refuses to serve when a system check fails.

A missing or unsafe setting stops the server with one line naming it, as ``manage.py`` does,
instead of a traceback per worker. Exit code 3 is gunicorn's "worker failed to boot", which
makes gunicorn stop rather than start another worker that would fail the same way.
"""

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
try:
    application = get_wsgi_application()

    from config.checks import refuse_unsafe_production

    refuse_unsafe_production()
except ImproperlyConfigured as error:
    sys.stderr.write(f"Configuration error: {error}\n")
    sys.stderr.flush()
    raise SystemExit(3) from None
