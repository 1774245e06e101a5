"""Validate, price and store a generation the user asked for, then start it after commit."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config import ratelimit
from generation import catalogue, transitions
from generation.exceptions import ProviderUnavailable, RateLimited
from generation.models import Generation
from generation.providers import get_provider
from generation.services.queueing import enqueue_after_commit


def check_rate_limit(user_id: uuid.UUID) -> None:
    """Count one submission in the user's current window; raise RateLimited past the limit."""
    limit = settings.GENERATION_RATE_LIMIT_COUNT
    window = settings.GENERATION_RATE_LIMIT_WINDOW_SECONDS
    verdict = ratelimit.hit("generate", user_id, limit=limit, window=window)
    if not verdict.allowed:
        raise RateLimited(
            f"You can start {limit} generations every {window} seconds. "
            f"Try again in {verdict.retry_after} seconds."
        )


def hold_ttl_seconds(model_key: str, params: Mapping[str, object]) -> int:
    """Return the hold's lifetime: expected duration times the safety factor, with a floor."""
    expected = catalogue.expected_seconds(model_key, params)
    return max(
        math.ceil(expected * settings.GENERATION_HOLD_SAFETY_FACTOR),
        settings.GENERATION_HOLD_MIN_SECONDS,
    )


def provider_status(model_key: str) -> tuple[bool, str]:
    """Return whether the model's provider can be used here, and why not."""
    spec = catalogue.get_model(model_key)
    return get_provider(spec.provider).configured()


def submit_generation(
    user,
    *,
    model_key: str,
    prompt: object,
    params: Mapping[str, object],
    provider_options: Mapping[str, object] | None = None,
) -> Generation:
    """Validate, price and store a queued generation, then start it after commit.

    Raises InvalidRequest, ProviderUnavailable or RateLimited and stores nothing in those cases.
    """
    spec = catalogue.get_model(model_key)
    cleaned = catalogue.clean_parameters(spec, params)
    text = catalogue.clean_prompt(prompt)
    ready, reason = provider_status(model_key)
    if not ready:
        raise ProviderUnavailable(reason)
    cost = catalogue.price(model_key, cleaned)
    check_rate_limit(user.pk)
    with transaction.atomic():
        generation = Generation.objects.create(
            user=user,
            model_key=spec.key,
            kind=spec.kind,
            prompt=text,
            params=cleaned,
            cost=cost,
            provider=spec.provider,
            provider_options=dict(provider_options or {}),
            hold_ttl_seconds=hold_ttl_seconds(spec.key, cleaned),
            next_check_at=timezone.now()
            + timedelta(seconds=settings.GENERATION_START_GRACE_SECONDS),
        )
        transitions.note(generation, "queued", f"Queued; this costs {cost} credits.")
        enqueue_after_commit("start_generation", str(generation.pk))
    return generation
