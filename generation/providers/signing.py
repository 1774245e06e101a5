"""Callback signatures: BabySea's Stripe-style header and Standard Webhooks (Replicate).

Pure functions with no Django import, so the local provider (its own process) signs with the same
code the adapters verify with. The two schemes differ in key handling: BabySea keys the HMAC with
the secret string as is; Standard Webhooks base64-decodes the part after ``whsec_``.
"""

import base64
import hashlib
import hmac
import time

DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """The signature is missing, malformed, wrong or outside the time tolerance."""


def _check_timestamp(raw: str, tolerance: int, now: float | None) -> int:
    try:
        timestamp = int(raw)
    except (TypeError, ValueError):
        raise SignatureError("non-numeric timestamp") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance")
    return timestamp


def babysea_signature(body: bytes, secret: str, timestamp: int) -> str:
    """Return the ``X-BabySea-Signature`` header value for ``body``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_babysea(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise ``SignatureError`` unless ``header`` signs ``body`` within the tolerance."""
    if not header or not secret:
        raise SignatureError("missing signature or secret")
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = parts.get("t")
    candidates = [p[3:] for p in header.split(",") if p.startswith("v1=")]
    if not timestamp or not candidates:
        raise SignatureError("expected t=<timestamp>,v1=<hex>")
    _check_timestamp(timestamp, tolerance, now)
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    if not any(hmac.compare_digest(expected.hexdigest(), c) for c in candidates):
        raise SignatureError("signature mismatch")


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        raise SignatureError("the secret is not whsec_<base64>") from None


def standard_signature(msg_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """Return a Standard Webhooks ``webhook-signature`` value (``v1,<base64>``)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_standard(
    body: bytes,
    headers: dict[str, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Verify Standard Webhooks headers over the raw ``body``; return the ``webhook-id``."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures or not secret:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    _check_timestamp(timestamp, tolerance, now)
    expected = standard_signature(msg_id, int(timestamp), body, secret).split(",", 1)[1]
    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return msg_id
    raise SignatureError("signature mismatch")
