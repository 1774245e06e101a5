"""Sentry, switched on by SENTRY_DSN: errors without personal data, each ops alert once."""

from typing import Any


def init_sentry(dsn: str, *, environment: str, traces_sample_rate: float, **options: Any) -> None:
    """Start the SDK; ``options`` reach ``sentry_sdk.init`` (tests pass a transport)."""
    import sentry_sdk
    from sentry_sdk.integrations.logging import ignore_logger

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        send_default_pii=False,
        traces_sample_rate=traces_sample_rate,
        **options,
    )
    # config.ops.ops_alert sends its own event; the error it logs must not become a second one.
    ignore_logger("ops")
