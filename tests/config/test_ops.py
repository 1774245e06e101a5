import logging

from django.core import mail

from config.ops import ops_alert


def test_ops_alert_logs_at_error_and_mails_admins(settings, caplog):
    settings.ADMINS = [("Ops", "ops@example.com")]
    with caplog.at_level(logging.ERROR, logger="ops"):
        ops_alert("Ledger check failed", "held_matches_holds: account 42", account="42")
    assert caplog.records[-1].levelno == logging.ERROR
    assert caplog.records[-1].alert == "Ledger check failed"
    assert mail.outbox[-1].to == ["ops@example.com"]
    assert "held_matches_holds" in mail.outbox[-1].body


def test_ops_alert_survives_a_broken_mail_server(settings, caplog):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 1
    with caplog.at_level(logging.ERROR, logger="ops"):
        ops_alert("Review item", "session cs_123 mismatched")
    assert any("could not mail" in record.getMessage() for record in caplog.records)


def test_one_alert_is_one_email_and_one_sentry_event(settings):
    """The ops logger has no mail handler and Sentry ignores it: ops_alert sends each once."""
    import sentry_sdk
    from sentry_sdk.transport import Transport

    from config.sentry import init_sentry

    events: list = []

    class Collect(Transport):
        def capture_envelope(self, envelope) -> None:
            events.extend(item for item in envelope.items if item.type == "event")

    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.SENTRY_DSN = "https://public@sentry.invalid/1"
    init_sentry(settings.SENTRY_DSN, environment="test", traces_sample_rate=0, transport=Collect)
    try:
        ops_alert("Review item", "refund of cs_123 needs a decision", item="42")
        sentry_sdk.flush()
    finally:
        sentry_sdk.init()  # no DSN: the SDK is off again for the rest of the run
    assert [message.subject for message in mail.outbox] == ["[Django] Review item"]
    assert len(events) == 1


def test_email_has_a_timeout(settings):
    """A hung mail server cannot hold a request or a webhook longer than this."""
    from django.core.mail import get_connection

    assert settings.EMAIL_TIMEOUT == 10
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert get_connection().timeout == 10
