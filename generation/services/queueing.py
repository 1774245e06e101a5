"""Queue generation tasks by name once the transaction commits."""

from __future__ import annotations

import logging

from django.db import transaction

from config.celery import app

logger = logging.getLogger(__name__)


def _send(task: str, args: tuple[object, ...]) -> None:
    app.send_task(f"generation.tasks.{task}", args=args)


def enqueue_after_commit(task: str, *args: object) -> None:
    """Queue ``generation.tasks.<task>`` once the transaction commits; log a broker outage.

    The row is already committed when the broker is asked, so an error here must not answer the
    user 500 for work that exists: the re-drive finds the row by its deadline and queues it.
    """

    def send() -> None:
        try:
            _send(task, args)
        except Exception:
            logger.exception("could not queue %s%r; the re-drive will", task, args)

    transaction.on_commit(send)


def send_after_commit(task: str, *args: object) -> None:
    """Queue ``generation.tasks.<task>`` once the transaction commits; a broker error raises."""
    transaction.on_commit(lambda: _send(task, args))
