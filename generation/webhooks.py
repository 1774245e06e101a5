"""The provider callback endpoint: verify on the raw bytes, store once, settle after commit."""

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config import ratelimit
from config.payloads import holds_nul
from generation.providers import get_provider, provider_classes
from generation.providers.base import InvalidCallback, InvalidSignature
from generation.services.callbacks import record_callback

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def provider_callback(request: HttpRequest, provider: str) -> JsonResponse:
    """Accept a provider's callback: 401 forged or stale, 413 too big, else 200 fast."""
    if provider not in provider_classes():
        return JsonResponse({"error": "unknown provider"}, status=404)
    limit = settings.PROVIDER_CALLBACK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return JsonResponse({"error": "body too large"}, status=413)
    body = request.body
    if len(body) > limit:
        return JsonResponse({"error": "body too large"}, status=413)
    try:
        event = get_provider(provider).parse_callback(body, request.headers, request.GET)
    except InvalidSignature as error:
        logger.warning("rejected %s callback: %s", provider, error)
        limited = ratelimit.limit_failed_signature(request, f"provider:{provider}")
        return limited or JsonResponse({"error": "invalid signature"}, status=401)
    except InvalidCallback as error:
        logger.warning("malformed %s callback: %s", provider, error)
        return JsonResponse({"error": "malformed callback"}, status=400)
    if event is None:
        return JsonResponse({"received": True, "ignored": True})
    if holds_nul(event.payload):
        logger.warning("malformed %s callback: a NUL character in the payload", provider)
        return JsonResponse({"error": "malformed callback"}, status=400)
    callback_id, created = record_callback(provider, event, hint=request.GET.get("generation", ""))
    return JsonResponse({"received": True, "duplicate": not created, "id": callback_id})
