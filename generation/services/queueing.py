"""Queue generation tasks by name once the transaction commits."""

from __future__ import annotations

from django.db import transaction

from config.celery import app
from config.queue import enqueue_on_commit


def enqueue_after_commit(task: str, *args: object) -> None:
    """Queue ``generation.tasks.<task>`` once the transaction commits; log a broker outage.

    The row is already committed when the broker is asked, so an error must not answer the
    user 500 for work that exists: the re-drive finds the row by its deadline and queues it.
    """
    enqueue_on_commit(f"generation.tasks.{task}", *args)


def send_after_commit(task: str, *args: object) -> None:
    """Queue ``generation.tasks.<task>`` once the transaction commits; a broker error raises."""
    transaction.on_commit(lambda: app.send_task(f"generation.tasks.{task}", args=args))
