"""Queue a Celery task by its registered name once the caller's transaction commits.

The one way apps enqueue follow-up work. Naming the task (``"billing.tasks.grant_signup_bonus"``)
instead of importing it keeps a service from importing its own tasks module, which imports the
service back. The row the task works on is already committed when the broker is asked, so a
broker outage is logged and never raised: the caller's re-drive, reconciliation or ``fallback``
does the work instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import import_module

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(
    task_name: str,
    *args: object,
    fallback: Callable[[], object] | None = None,
    retry: bool = True,
) -> None:
    """Send ``task_name(*args)`` after the transaction commits (at once in autocommit).

    A failure to publish is logged, then ``fallback`` runs when given. ``retry=False`` skips
    Celery's publish retries, for callers that must not wait on a down broker.
    """

    def send() -> None:
        try:
            registered_task(task_name).apply_async(args, retry=retry)
        except Exception:
            logger.exception("could not queue %s%r", task_name, args)
            if fallback is not None:
                fallback()

    transaction.on_commit(send, using="default")


def registered_task(task_name: str):
    """Return the task registered under ``task_name``, importing its module on first use.

    A web process registers an app's tasks only when something imports its ``tasks`` module;
    the worker imports them all at start.
    """
    if task_name not in current_app.tasks:
        import_module(task_name.rpartition(".")[0])
    return current_app.tasks[task_name]
