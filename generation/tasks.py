"""Celery entry points: each loads by id, calls one service and owns its retry.

Every task is idempotent (guarded transitions, ledger calls keyed by ``gen:<id>``), so Celery's
at-least-once redelivery and the database-driven re-drive may both run it again safely.
``start_generation`` has its own queue so a busy settle queue never delays the answer to a user
who lacks credits.
"""

import logging
import uuid

from celery import shared_task
from celery.signals import worker_init
from django.db import OperationalError

from generation.providers.base import ProviderTemporaryError
from generation.services import callbacks, cancellation, dispatch, holds, reconcile, settlement
from media_store.api import IngestTemporaryError

logger = logging.getLogger(__name__)

RETRY = {
    "autoretry_for": (
        ProviderTemporaryError,
        IngestTemporaryError,
        callbacks.CallbackNotReady,
        OperationalError,
    ),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 6,
    "acks_late": True,
    "reject_on_worker_lost": True,
}


@worker_init.connect
def warm_up_worker(**_kwargs) -> None:
    """Build clients and load codecs before the pool starts: prefork children inherit them."""
    # Nothing here opens a connection, so forking afterwards shares no socket.
    try:
        dispatch.warm_up()
    except Exception:
        logger.exception("warming up the worker failed; the first tasks will do it")


@shared_task(queue="start", **RETRY)
def start_generation(generation_id: str) -> str:
    """Hold the credits, then dispatch to the provider."""
    return dispatch.start_generation(generation_id)


@shared_task(queue="settle", **RETRY)
def settle_callback(callback_id: int) -> str:
    """Apply a stored provider callback: ingest then capture, or release."""
    return callbacks.settle_callback(callback_id)


@shared_task(queue="settle", **RETRY)
def settle_generation(generation_id: str) -> str:
    """Finish ledger work a crash left claimed, or collect an unpaid generation."""
    return settlement.settle_generation(generation_id)


@shared_task(queue="settle", **RETRY)
def cancel_at_provider(generation_id: str) -> str:
    """Finish a cancel's release and tell the provider to stop the job."""
    return cancellation.cancel_at_provider(generation_id)


@shared_task(queue="settle", **RETRY)
def reconcile_generation(generation_id: str) -> str:
    """Poll the provider about a job with no news and settle what it reports."""
    return reconcile.reconcile_generation(generation_id)


@shared_task(queue="settle", **RETRY)
def collect_unpaid(account_id: str) -> int:
    """Charge the account's unpaid generations now that credits arrived; return how many paid."""
    return settlement.collect_unpaid(uuid.UUID(account_id))


@shared_task(queue="settle", acks_late=True)
def redrive_generations() -> dict[str, int]:
    """Re-enqueue work for every generation and callback past its deadline (beat, every 30 s)."""
    return reconcile.redrive()


@shared_task(queue="settle", acks_late=True)
def keep_running_holds_alive() -> dict[str, int]:
    """Extend the holds of generations still running at a provider (beat, every minute)."""
    return holds.keep_running_holds_alive()
