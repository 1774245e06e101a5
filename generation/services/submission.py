"""Validate, price and store a generation the user asked for, then start it after commit."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config import submission
from generation import catalogue, transitions
from generation.exceptions import InvalidRequest, PriceChanged, ProviderUnavailable
from generation.models import Generation
from generation.providers import get_provider
from generation.services.queueing import enqueue_after_commit

logger = logging.getLogger(__name__)


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


def offered_models() -> list[catalogue.ModelSpec]:
    """Return the catalogue's models whose provider is configured here, in catalogue order."""
    return [spec for spec in catalogue.CATALOGUE.values() if provider_status(spec.key)[0]]


def submit_generation(
    user,
    *,
    model_key: str,
    prompt: object,
    params: Mapping[str, object],
    provider_options: Mapping[str, object] | None = None,
    submission_key: str | None = None,
    expected_cost: object = None,
) -> Generation:
    """Validate, price and store a queued generation, then start it after commit.

    ``submission_key`` is the form's one-time key: a second submission with the same key
    returns the generation the first one stored, whatever else it carries, so a double click
    holds once. ``expected_cost`` is the price the page showed; a different current price is
    refused. Raises InvalidRequest, PriceChanged or ProviderUnavailable and stores nothing in
    those cases. The per-user rate limit applies in the view (``config.ratelimit``).
    """
    key = clean_submission_key(submission_key)
    try:
        # One commit: the key's lookup shares the insert's transaction. A repeat returns the
        # first generation before anything is validated (the view does not count it either).
        with transaction.atomic():
            first = (
                Generation.objects.filter(user=user, submission_key=key).first() if key else None
            )
            if first is not None:
                return first
            spec = catalogue.get_model(model_key)
            cleaned = catalogue.clean_parameters(spec, params)
            text = catalogue.clean_prompt(prompt)
            ready, reason = provider_status(model_key)
            if not ready:
                logger.warning("refused %s: %s", spec.key, reason)
                raise ProviderUnavailable(
                    f"{spec.name} is not available here. Choose another model."
                )
            cost = catalogue.price(model_key, cleaned)
            if expected_cost is not None and str(expected_cost) != str(cost):
                raise PriceChanged(
                    f"The price of these options is {cost} credits, not what the page showed. "
                    "Check it and submit again."
                )
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
                submission_key=key,
                next_check_at=timezone.now()
                + timedelta(seconds=settings.GENERATION_START_GRACE_SECONDS),
            )
            transitions.note(generation, "queued", f"Queued; this costs {cost} credits.")
            enqueue_after_commit("start_generation", str(generation.pk))
    except IntegrityError:
        # The same form submitted concurrently: the unique key let the other request store it.
        first = Generation.objects.filter(user=user, submission_key=key).first()
        if key is None or first is None:
            raise
        return first
    return generation


def clean_submission_key(value: object) -> str | None:
    """Return a well-formed one-time key, None when absent; raise InvalidRequest otherwise."""
    try:
        return submission.clean_key(value)
    except ValueError:
        raise InvalidRequest(
            "This form is out of date: reload the page and submit again."
        ) from None
