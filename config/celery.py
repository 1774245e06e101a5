"""Celery wiring only: configuration comes from Django settings, tasks from each app."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
