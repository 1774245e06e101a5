"""The ledger announces committed credits: one ``credits_added`` per new grant or top-up."""

import pytest
from django.db import transaction

from ledger import api

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def heard():
    """Collect what ``credits_added`` receivers are sent, as (account, amount, kind, key)."""
    calls: list[tuple] = []

    def receiver(sender, account_id, amount, kind, key, **kwargs):
        calls.append((account_id, amount, kind, key))

    api.credits_added.connect(receiver, dispatch_uid="test.heard")
    yield calls
    api.credits_added.disconnect(dispatch_uid="test.heard")


def test_a_grant_is_announced_once_and_its_replays_not_at_all(account, ref, heard):
    key = ref("grant")
    api.grant(account, 30, key=key, source="test")
    api.grant(account, 30, key=key, source="test")  # duplicate
    api.grant(account, 31, key=key, source="test")  # conflict

    assert heard == [(account, 30, "grant", key)]


def test_a_positive_adjustment_is_announced_and_a_negative_one_is_not(account, ref, heard):
    api.grant(account, 10, key=ref("grant"), source="test")
    heard.clear()
    up, down = ref("up"), ref("down")
    api.adjust(account, 5, key=up, actor="test", reason="goodwill")
    api.adjust(account, -3, key=down, actor="test", reason="correction")

    assert heard == [(account, 5, "adjust", up)]


def test_the_announcement_waits_for_the_commit_and_a_rollback_sends_none(account, ref, heard):
    kept, undone = ref("kept"), ref("undone")
    with transaction.atomic():
        api.grant(account, 7, key=kept, source="test")
        assert heard == []
    assert heard == [(account, 7, "grant", kept)]

    with pytest.raises(RuntimeError), transaction.atomic():
        api.grant(account, 8, key=undone, source="test")
        raise RuntimeError("the caller failed after the grant")
    assert heard == [(account, 7, "grant", kept)]


def test_a_failing_receiver_is_logged_and_never_reaches_the_caller(account, ref, caplog):
    def broken(sender, **kwargs):
        raise ValueError("receiver bug")

    api.credits_added.connect(broken, dispatch_uid="test.broken")
    try:
        result = api.grant(account, 4, key=ref("grant"), source="test")
    finally:
        api.credits_added.disconnect(dispatch_uid="test.broken")

    assert result.status == "granted"
    assert "failed" in caplog.text and "receiver bug" in caplog.text
