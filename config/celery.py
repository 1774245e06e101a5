"""Celery wiring only: configuration comes from Django settings, tasks from each app."""

import os
import sys

from celery import Celery
from celery.signals import beat_init, task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def refuse_unsafe_start(**_kwargs) -> None:
    """Stop a production worker or beat before its first task, as config.wsgi stops gunicorn.

    Celery logs and swallows exceptions from signal handlers, so this exits itself.
    """
    import django
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connections

    django.setup()
    from config.checks import refuse_unsafe_production

    try:
        refuse_unsafe_production()
    except ImproperlyConfigured as error:
        sys.__stderr__.write(f"Configuration error: {error}\n")
        raise SystemExit(1) from None
    finally:
        connections.close_all()  # prefork children must not share this process's connection


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(task=None, **_kwargs) -> None:
    """Treat each task as Django treats a request: reuse the connection within CONN_MAX_AGE.

    It is closed when obsolete or broken, and health-checked before its first use in a task.
    Eager runs (inside a caller's transaction) are left alone, as Celery's own fixup does.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
