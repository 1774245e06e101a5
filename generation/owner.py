"""What an owner does to a generation besides submitting and canceling: watch it, delete it."""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from generation import transitions
from generation.exceptions import GenerationError, NotCancelable
from generation.models import Generation, ProviderCallback, Status
from generation.services.cancellation import cancel_generation
from media_store import api as media

logger = logging.getLogger(__name__)

# Writes at most this often per generation, however fast the live page polls.
VIEW_WRITE_INTERVAL = timedelta(seconds=5)
# States with nothing left to do: no hold to settle, no output still to come.
DELETABLE = (Status.SUCCEEDED, Status.FAILED, Status.REJECTED, Status.CANCELED, Status.EXPIRED)


class NotDeletable(GenerationError):
    """The generation is still running, or is unpaid and may yet be collected."""


def is_deletable(generation: Generation) -> bool:
    """Return whether the owner may delete the generation now."""
    return generation.status in DELETABLE and generation.pending_action is None


def note_viewed(generation: Generation) -> None:
    """Record that the owner's page is showing the generation now (throttled)."""
    now = timezone.now()
    Generation.objects.filter(pk=generation.pk).filter(
        Q(last_viewed_at__isnull=True) | Q(last_viewed_at__lt=now - VIEW_WRITE_INTERVAL)
    ).update(last_viewed_at=now)


def delete_generation(user, generation_id: uuid.UUID | str) -> Generation:
    """Delete a finished generation's outputs and personal data; keep its ledger history.

    The stored objects go first (``media.delete`` removes objects, then rows, and may be
    repeated), then one guarded UPDATE clears the prompt, parameters and provider payloads and
    stamps ``deleted_at``. The hold and its journal entries stay as they are, so the ledger
    still adds up. Raises ``Generation.DoesNotExist`` for another user's or a deleted one.
    """
    generation = Generation.objects.get(pk=generation_id, user=user, deleted_at__isnull=True)
    if not is_deletable(generation):
        raise NotDeletable(
            "This generation is still in progress or waiting for payment; it can be deleted "
            "once it has finished."
        )
    erase_generation(generation)
    return generation


def erase_generation(generation: Generation) -> None:
    """Remove outputs and clear personal fields, whatever the state (account deletion)."""
    for asset in media.assets_for_generation(generation.pk):
        media.delete(asset.id)
    now = timezone.now()
    Generation.objects.filter(pk=generation.pk).update(
        prompt="", params={}, provider_options={}, error_detail="", deleted_at=now, updated_at=now
    )
    ProviderCallback.objects.filter(generation_id=generation.pk).update(payload={}, report={})
    generation.refresh_from_db()
    logger.info("generation deleted", extra={"generation_id": str(generation.pk)})


def erase_user_generations(user) -> int:
    """Cancel the user's running generations, then erase every one (account deletion).

    Canceling releases their holds; outputs that still arrive for a canceled generation are
    discarded by settlement. Return how many generations were erased.
    """
    erased = 0
    for row in Generation.objects.filter(user=user, deleted_at__isnull=True):
        if row.status == Status.QUEUED:
            transitions.withdraw(row)
        elif row.is_cancelable:
            # Past the point of canceling (a report landed meanwhile): erased all the same.
            with contextlib.suppress(NotCancelable):
                cancel_generation(user, row.pk)
        erase_generation(row)
        erased += 1
    return erased
