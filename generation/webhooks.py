"""The provider callback endpoint, in the shared webhook shape (``config.webhooks``).

Signature over the raw bytes, strict JSON, then the callback is stored once by its delivery id
and settled after commit.
"""

import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.webhooks import Answer, BadSignature, receive, respond
from generation.providers import get_provider, provider_classes
from generation.providers.base import InvalidCallback, InvalidSignature
from generation.services.callbacks import record_callback

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def provider_callback(request: HttpRequest, provider: str) -> JsonResponse:
    """Accept a provider's callback: 401 forged or stale, 413 too big, 400 malformed, else 200."""
    if provider not in provider_classes():
        return respond(Answer(404, "unknown_provider"))
    adapter = get_provider(provider)

    def verify(body: bytes) -> None:
        try:
            adapter.verify_callback(body, request.headers)
        except InvalidSignature as error:
            raise BadSignature(str(error)) from None

    def handle(payload: Any, body: bytes) -> Answer:
        try:
            event = adapter.read_callback(payload, request.headers, request.GET)
        except InvalidCallback as error:
            logger.warning("malformed %s callback: %s", provider, error)
            return Answer(400, "malformed")
        if event is None:
            return Answer(200, "ignored")
        callback_id, created = record_callback(
            provider, event, hint=request.GET.get("generation", "")
        )
        return Answer(200, "received" if created else "duplicate", {"id": callback_id})

    return receive(
        request,
        scope=f"provider:{provider}",
        verify=verify,
        handle=handle,
        bad_signature_status=401,
    )
