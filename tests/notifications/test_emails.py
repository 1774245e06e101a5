"""Notification emails: recorded once per event, sent once by the task, branded, opt-out."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connections

from ledger import api as ledger
from ledger import tasks as ledger_tasks
from notifications import services, tasks
from notifications.models import Kind, Notification, Preferences

pytestmark = pytest.mark.django_db(transaction=True)


def html_of(message) -> str:
    [(body, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return body


def descend_below_threshold(user, ref_prefix: str) -> None:
    ledger.grant(user.pk, 60, key=f"{ref_prefix}:grant", source="test")
    for number in range(10):
        ledger.hold(user.pk, f"{ref_prefix}:job{number}", 2, ttl=timedelta(days=1))


def test_ten_concurrent_low_balance_tasks_record_and_send_one_email(
    alice, settings, site, eager_celery
):
    settings.LEDGER_LOW_BALANCE_THRESHOLD = 50
    mail.outbox.clear()
    # Each hold below the threshold queues the task (run inline here); then ten more at once.
    descend_below_threshold(alice, f"low:{alice.pk}")

    def notice():
        try:
            ledger_tasks.notice_low_balance(str(alice.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=notice) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    [row] = Notification.objects.filter(user=alice)
    assert row.kind == Kind.LOW_BALANCE and row.status == "sent"
    [message] = mail.outbox
    assert message.to == [alice.email]
    assert message.subject == "[Studio] Your credit balance is low"
    assert "You have 48 credits left" in message.body
    assert "https://studio.example/billing/" in message.body
    assert 'href="https://studio.example/billing/"' in html_of(message)
    assert "Studio Example" in html_of(message)
    # The task runs again (a redelivery): the row is sent, nothing more goes out.
    assert tasks.send_notification(row.pk) == "taken"
    assert len(mail.outbox) == 1


def test_a_failed_send_releases_its_claim_and_the_retry_sends_once(alice, settings, site):
    services.record(alice.pk, Kind.LOW_BALANCE, "retry-test", {"available": 3})
    row = Notification.objects.get(user=alice)
    settings.EMAIL_BACKEND = "tests.notifications.test_emails.RefusingBackend"
    with pytest.raises(ConnectionRefusedError):
        services.deliver(row.pk)
    row.refresh_from_db()
    assert row.status == "pending" and row.claimed_at is None and "refused" in row.error

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox.clear()
    assert services.deliver(row.pk) == "sent"
    assert services.deliver(row.pk) == "taken"
    assert len(mail.outbox) == 1
    row.refresh_from_db()
    assert row.attempts == 2 and row.status == "sent"


def test_recording_an_event_twice_keeps_one_row(alice):
    assert services.record(alice.pk, Kind.LOW_BALANCE, "same", {"available": 1}) is True
    assert services.record(alice.pk, Kind.LOW_BALANCE, "same", {"available": 1}) is False
    assert Notification.objects.filter(user=alice).count() == 1


def test_an_opted_out_kind_is_skipped_but_receipts_still_go(alice, site):
    Preferences.objects.create(user=alice, balance_reminders=False)
    services.record(alice.pk, Kind.LOW_BALANCE, "opted-out", {"available": 1})
    services.record(
        alice.pk,
        Kind.RECEIPT,
        "checkout:cs_1",
        {"product": "Starter", "credits": 100, "price": "$10.00", "renewal": False},
    )
    mail.outbox.clear()
    outcomes = {row.kind: services.deliver(row.pk) for row in Notification.objects.all()}
    assert outcomes == {Kind.LOW_BALANCE: "skipped", Kind.RECEIPT: "sent"}
    [receipt] = mail.outbox
    assert receipt.subject == "[Studio] Your receipt for Starter"


def test_the_preferences_page_saves_the_choices(alice_client, alice):
    page = alice_client.get("/account/emails/")
    assert page.status_code == 200
    assert b"Generation finished or failed" in page.content
    response = alice_client.post("/account/emails/", {"generation_updates": "on"})
    assert response.status_code == 302
    chosen = Preferences.objects.get(user=alice)
    assert chosen.generation_updates and not chosen.balance_reminders


def test_redrive_queues_only_old_unclaimed_rows(alice, eager_celery, site):
    from datetime import timedelta

    from django.utils import timezone

    services.record(alice.pk, Kind.LOW_BALANCE, "lost", {"available": 1})
    row = Notification.objects.get(user=alice)
    # The task was lost (the broker dropped it): the row is still pending, unclaimed.
    Notification.objects.filter(pk=row.pk).update(
        status="pending", claimed_at=None, created_at=timezone.now() - timedelta(minutes=10)
    )
    mail.outbox.clear()
    assert tasks.redrive_notifications() == 1
    assert len(mail.outbox) == 1
    assert tasks.redrive_notifications() == 0


class RefusingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("mail server refused the connection")


def test_a_failing_listener_never_undoes_the_senders_work(alice, settings, monkeypatch):
    """The ledger's claim commits even when recording the email fails; the error is logged."""
    from notifications import receivers

    def broken(*args, **kwargs):
        raise RuntimeError("mail table unavailable")

    monkeypatch.setattr(receivers.services, "record", broken)
    settings.LEDGER_LOW_BALANCE_THRESHOLD = 50
    ledger.grant(alice.pk, 60, key=f"robust:{alice.pk}", source="test")
    ledger.hold(alice.pk, f"robust:{alice.pk}:job", 20, ttl=timedelta(days=1))

    assert ledger_tasks.notice_low_balance(str(alice.pk)) == "fire"
    assert ledger_tasks.notice_low_balance(str(alice.pk)) == "fired"  # the claim committed
    assert not Notification.objects.filter(user=alice).exists()
