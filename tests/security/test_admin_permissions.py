"""Every admin action and custom admin view checks a named permission, not just is_staff.

View-only staff can open every list and detail page but no action that changes anything is
offered to them, and posting one anyway changes nothing.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing.models import ReviewItem, StripeEvent
from generation.models import Generation

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELISTS = {
    "accounts_user": "deactivate_users",
    "billing_stripeevent": "reprocess",
    "billing_reviewitem": "resolve_by_grant",
    "generation_generation": "redrive_now",
    "ledger_account": "adjust_balance",
}


def post_action(client, changelist: str, action: str, pk) -> object:
    return client.post(
        reverse(f"admin:{changelist}_changelist"), {"action": action, "_selected_action": [pk]}
    )


@pytest.fixture
def rows(world):
    """One row in every list, so each list renders its action menu when allowed."""
    from ledger import api

    api.grant(world.alice.pk, 10, key=f"perm-{world.alice.pk}", source="test")
    event = StripeEvent.objects.create(
        stripe_event_id=f"evt_perm_{world.alice.pk.hex[:8]}",
        type="ping",
        livemode=False,
        payload={},
    )
    item = ReviewItem.objects.create(
        reason=ReviewItem.Reason.REFUND,
        user=world.alice,
        stripe_object_id="ch_perm",
        detail="refund to decide",
        key=f"review-perm-{world.alice.pk}",
    )
    return event, item


def test_view_only_staff_see_every_list_without_its_actions(rows, view_only_client):
    for changelist, action in CHANGELISTS.items():
        page = view_only_client.get(reverse(f"admin:{changelist}_changelist"))
        assert page.status_code == 200, changelist
        assert f'value="{action}"' not in page.content.decode(), changelist


def test_superusers_are_offered_the_actions(world, rows, client):
    client.force_login(world.staff)
    for changelist, action in CHANGELISTS.items():
        page = client.get(reverse(f"admin:{changelist}_changelist"))
        assert f'value="{action}"' in page.content.decode(), changelist


def test_posting_an_action_as_view_only_staff_changes_nothing(world, rows, view_only_client):
    event, item = rows
    world.generation.next_check_at = None
    world.generation.save(update_fields=["next_check_at"])

    post_action(view_only_client, "accounts_user", "deactivate_users", world.alice.pk)
    post_action(view_only_client, "billing_stripeevent", "reprocess", event.pk)
    post_action(view_only_client, "billing_reviewitem", "resolve_by_grant", item.pk)
    view_only_client.post(
        reverse("admin:billing_reviewitem_changelist"),
        {
            "action": "resolve_by_grant",
            "_selected_action": [item.pk],
            "apply": "1",
            "reason": "view-only staff granting",
        },
    )
    post_action(view_only_client, "generation_generation", "redrive_now", world.generation.pk)

    world.alice.refresh_from_db()
    event.refresh_from_db()
    item.refresh_from_db()
    generation = Generation.objects.get(pk=world.generation.pk)
    assert world.alice.is_active
    assert event.attempts == 1 and event.processed_at is None
    assert item.is_open and item.resolved_by is None
    assert generation.next_check_at is None and generation.redrive_attempts == 0
