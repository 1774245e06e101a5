"""Operations around the functions: selectors, tasks, notices, the command and the admin."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from ledger import api, selectors, tasks
from ledger.signals import low_balance

pytestmark = pytest.mark.django_db(transaction=True)
TTL = timedelta(minutes=10)


def test_journal_page_returns_only_the_users_rows_newest_first(alice, bob, ref):
    for n in range(5):
        api.grant(alice.pk, 10 + n, key=ref("a"), source="test")
    api.grant(bob.pk, 99, key=ref("b"), source="test")
    first = selectors.journal_page(alice.pk, limit=3)
    assert [e.amount for e in first.entries] == [14, 13, 12]
    rest = selectors.journal_page(alice.pk, before=first.next_before, limit=3)
    assert [e.amount for e in rest.entries] == [11, 10]
    assert rest.next_before is None
    # Asking for every row inside the user's scope still yields only the user's rows.
    from ledger.models import Entry

    with api.reading_as_user(alice.pk):
        assert {e.account_id for e in Entry.objects.all()} == {alice.pk}
    assert Entry.objects.count() == 0  # the runtime role alone sees nothing


def test_holds_for_account_and_totals(alice, ref):
    api.grant(alice.pk, 10, key=ref("k"), source="test")
    job = ref("job")
    api.hold(alice.pk, job, 4, ttl=TTL)
    assert [h.reference for h in selectors.holds_for_account(alice.pk)] == [job]
    totals = selectors.totals()
    assert totals.held >= 4 and totals.pending_holds >= 1


def test_ten_holds_crossing_the_threshold_announce_one_notice(alice, ref, settings):
    settings.LEDGER_LOW_BALANCE_THRESHOLD = 50
    api.grant(alice.pk, 60, key=ref("k"), source="test")
    for _ in range(10):
        api.hold(alice.pk, ref("job"), 2, ttl=TTL)
    announced: list[dict] = []

    def count(sender, **kwargs):
        announced.append(kwargs)

    low_balance.connect(count, dispatch_uid="test.count_low_balance")
    results: list[str] = []

    def notice():
        try:
            results.append(tasks.notice_low_balance(str(alice.pk)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=notice) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["fire"] + ["fired"] * 9
    low_balance.disconnect(dispatch_uid="test.count_low_balance")
    assert [(a["account_id"], a["available"]) for a in announced] == [(alice.pk, 40)]
    # A top-up re-arms it; the next descent notifies again.
    api.grant(alice.pk, 100, key=ref("k"), source="test")
    assert tasks.notice_low_balance(str(alice.pk)) == "armed"
    api.adjust(alice.pk, -100, key=ref("k"), actor="test", reason="descend again")
    assert tasks.notice_low_balance(str(alice.pk)) == "fire"


def test_sweeper_task_expires_due_holds(account, ref):
    api.grant(account, 5, key=ref("k"), source="test")
    job = ref("job")
    api.hold(account, job, 5, ttl=timedelta(seconds=1))
    import time

    time.sleep(1.1)
    tasks.expire_due_holds()
    assert api.hold_status(job) == "expired"
    assert api.balance(account) == api.Balance(5, 0)


def test_check_task_alerts_once_per_violation(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks, "ops_alert", lambda subject, detail: sent.append(subject))
    monkeypatch.setattr(api, "check", lambda: [api.Violation("held_matches_pending_holds", "x")])
    assert tasks.check_ledger() == 1
    assert sent == ["ledger check: held_matches_pending_holds"]


def test_command_adjusts_by_email_and_checks(alice, capsys):
    call_command("ledger", "adjust", "--email", alice.email, "--delta", "7", "--reason", "support")
    assert api.balance(alice.pk) == api.Balance(7, 0)
    with pytest.raises(CommandError):
        call_command("ledger", "adjust", "--email", alice.email, "--delta", "-8", "--reason", "x")
    with pytest.raises(CommandError):
        call_command(
            "ledger", "adjust", "--email", "nobody@example.com", "--delta", "1", "--reason", "x"
        )


def test_command_audit_exits_1_when_violations_exist(monkeypatch):
    monkeypatch.setattr(api, "audit", lambda: [api.Violation("entry_chain", "account x")])
    with pytest.raises(CommandError) as err:
        call_command("ledger", "audit")
    assert err.value.returncode == 1


def test_admin_is_read_only_searchable_by_email_and_adjusts_with_a_reason(staff_client, alice, ref):
    api.grant(alice.pk, 10, key=ref("k"), source="test")
    for url in ("/admin/ledger/entry/", "/admin/ledger/hold/", "/admin/ledger/account/"):
        page = staff_client.get(url, {"q": alice.email})
        assert page.status_code == 200
    page = staff_client.get("/admin/ledger/entry/", {"q": alice.email})
    assert alice.email in page.content.decode()
    assert staff_client.get("/admin/ledger/entry/add/").status_code == 403
    assert staff_client.get("/admin/ledger/account/health/").status_code == 200
    assert staff_client.get(f"/admin/ledger/account/{alice.pk}/adjust/").status_code == 200
    missing = staff_client.post(
        f"/admin/ledger/account/{alice.pk}/adjust/", {"delta": 5, "reason": " "}
    )
    assert missing.status_code == 200 and api.balance(alice.pk).available == 10
    for _ in range(2):  # a double submit is a duplicate, not a second adjustment
        staff_client.post(
            f"/admin/ledger/account/{alice.pk}/adjust/", {"delta": 5, "reason": "goodwill"}
        )
    assert api.balance(alice.pk).available == 15


def test_balance_of_an_account_never_granted_is_zero():
    assert api.balance(uuid.uuid4()) == api.Balance(0, 0)


def test_only_grants_from_below_the_threshold_queue_a_re_arm(alice, ref, settings, monkeypatch):
    """A grant that starts above the threshold cannot have a fired notice to re-arm."""
    settings.LEDGER_LOW_BALANCE_THRESHOLD = 50
    queued: list = []
    monkeypatch.setattr(
        api, "enqueue_on_commit", lambda name, account_id, **options: queued.append(account_id)
    )
    api.grant(alice.pk, 30, key=ref("k"), source="test")  # 0 -> 30: started below
    api.grant(alice.pk, 30, key=ref("k"), source="test")  # 30 -> 60: started below
    api.grant(alice.pk, 30, key=ref("k"), source="test")  # 60 -> 90: started above
    api.adjust(alice.pk, 5, key=ref("k"), actor="test", reason="goodwill")  # 90 -> 95: above
    assert queued == [str(alice.pk), str(alice.pk)]


def test_every_answer_is_a_member_of_its_operations_enum(alice, bob, ref):
    """Each call returns its contract's enum member, so callers compare members, not strings."""
    grant = api.grant(alice.pk, 10, key=ref("g"), source="test")
    job = ref("job")
    held = api.hold(alice.pk, job, 4, ttl=TTL)
    refused = api.hold(bob.pk, ref("job"), 4, ttl=TTL)
    extended = api.extend(job, ttl=TTL)
    captured = api.capture(job)
    released = api.release(job)
    adjusted = api.adjust(alice.pk, 1, key=ref("a"), actor="test", reason="enum check")
    clawed = api.clawback(alice.pk, 100, key=ref("c"), source="test")
    answers = [
        (grant.status, api.GrantOutcome.GRANTED),
        (held.status, api.HoldOutcome.HELD),
        (refused.status, api.HoldOutcome.INSUFFICIENT),
        (extended.status, api.ExtendOutcome.EXTENDED),
        (captured.status, api.CaptureOutcome.CAPTURED),
        (released.status, api.ReleaseOutcome.ALREADY_CAPTURED),
        (adjusted.status, api.AdjustOutcome.ADJUSTED),
        (clawed.status, api.ClawbackOutcome.PARTIAL),
    ]
    for status, member in answers:
        assert type(status) is type(member) and status is member
    assert api.hold_status(job) is api.HoldStatus.CAPTURED
    assert api.hold_status(ref("unknown")) is None
