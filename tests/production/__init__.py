"""``make prod-check``: the app run as production runs it, walked over HTTP.

Not collected by pytest (no ``test_`` modules): ``python -m tests.production`` inside
``config.devstack`` starts gunicorn, a Celery worker and beat with ``DJANGO_ENV=production`` and
the runtime role's ``DATABASE_URL`` alone, then walks a customer's journey through them.
"""
