"""Cancel a generation for its user, then stop the job at the provider."""

from __future__ import annotations

import logging
import uuid

from generation import transitions
from generation.exceptions import NotCancelable
from generation.models import Generation, Status
from generation.providers import get_provider
from generation.services.holds import finish_pending, finish_release
from generation.services.queueing import enqueue_after_commit

logger = logging.getLogger(__name__)


def cancel_generation(user, generation_id: uuid.UUID | str) -> Generation:
    """Cancel the user's generation and return its credits now; tell the provider after commit.

    Raises Generation.DoesNotExist for someone else's generation and NotCancelable when it has
    already finished or its result is being settled.
    """
    generation = Generation.objects.get(pk=generation_id, user=user)
    if not transitions.cancel(generation):
        generation.refresh_from_db()
        raise NotCancelable(
            "This generation has already finished."
            if not generation.is_active
            else "This generation is finishing and can no longer be canceled."
        )
    try:
        finish_release(generation)
    except Exception:
        # The claim stays on the row: the provider-cancel task and the re-drive finish it.
        logger.exception("release after cancel of %s failed; left for the re-drive", generation.pk)
    enqueue_after_commit("cancel_at_provider", str(generation.pk))
    return generation


def cancel_at_provider(generation_id: uuid.UUID | str) -> str:
    """Finish a canceled generation's release and ask the provider to stop the job."""
    generation = Generation.objects.get(pk=generation_id)
    if generation.pending_action:
        finish_pending(generation)
    if generation.status != Status.CANCELED or not generation.provider_job_id:
        return "nothing to cancel at the provider"
    get_provider(generation.provider).cancel(generation.provider_job_id)
    return "provider cancel sent"
