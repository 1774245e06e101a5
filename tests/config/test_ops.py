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
