"""The review queue in the admin: list, filter, and resolve through the ledger with a reason."""

import pytest

from billing.models import ReviewItem
from tests.billing.conftest import available, charge_object, make_event, spend

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shortfall_item(post_event, alice, buy):
    """A full refund after Alice spent 70 of 100 credits: 30 taken, 70 short."""
    purchase = buy(alice)
    spend(alice, 70)
    event = make_event(
        "charge.refunded", charge_object(purchase.stripe_payment_intent_id, refunded=1000)
    )
    assert post_event(event).status_code == 200
    return ReviewItem.objects.get(reason="refund")


def resolve(staff_client, item, action, **form):
    return staff_client.post(
        "/admin/billing/reviewitem/",
        {"action": action, "_selected_action": [item.pk], **form},
    )


def test_queue_lists_and_filters_open_items_with_a_shortfall(staff_client, shortfall_item):
    listing = staff_client.get("/admin/billing/reviewitem/?shortfall=yes&resolved_at__isnull=True")
    empty = staff_client.get("/admin/billing/reviewitem/?shortfall=no")

    assert listing.status_code == 200
    assert shortfall_item.stripe_object_id in listing.content.decode()
    assert shortfall_item.stripe_object_id not in empty.content.decode()


def test_resolving_without_a_reason_asks_for_one_and_changes_nothing(
    staff_client, alice, shortfall_item
):
    first = resolve(staff_client, shortfall_item, "resolve_by_clawback")
    blank = resolve(staff_client, shortfall_item, "resolve_by_clawback", apply="1", reason=" ")

    assert "reason" in first.content.decode()
    assert blank.status_code == 200 and "This field is required" in blank.content.decode()
    shortfall_item.refresh_from_db()
    assert shortfall_item.is_open
    assert available(alice) == 0


def test_clawback_of_the_shortfall_after_a_top_up_takes_it_once(
    staff_client, staff, alice, buy, shortfall_item
):
    buy(alice)  # 100 more credits

    for _ in range(2):
        resolve(
            staff_client,
            shortfall_item,
            "resolve_by_clawback",
            apply="1",
            reason="Customer topped up; recover the refunded credits",
        )

    shortfall_item.refresh_from_db()
    assert shortfall_item.resolution == "clawed_back" and shortfall_item.resolved_by == staff
    assert shortfall_item.resolution_credits == 70
    assert "clawed_back" in shortfall_item.resolution_detail
    assert available(alice) == 30


def test_grant_on_a_refund_item_returns_what_was_taken_and_dismiss_moves_nothing(
    staff_client, alice, post_event, buy, shortfall_item
):
    resolve(
        staff_client, shortfall_item, "resolve_by_grant", apply="1", reason="Refund was an error"
    )
    shortfall_item.refresh_from_db()
    assert shortfall_item.resolution == "granted"
    assert available(alice) == 30

    other = buy(alice)
    post_event(
        make_event("charge.refunded", charge_object(other.stripe_payment_intent_id, refunded=500))
    )
    item = ReviewItem.objects.filter(reason="refund", resolved_at=None).get()
    resolve(staff_client, item, "resolve_by_dismissal", apply="1", reason="Expected refund")
    item.refresh_from_db()
    assert item.resolution == "dismissed" and item.note == "Expected refund"
    assert available(alice) == 30 + 100 - 50


def test_clawback_after_the_automatic_clawback_took_everything_takes_nothing_more(
    staff, alice, post_event, buy
):
    """The old default fell back to the item's credits and took them a second time."""
    from billing import reviews
    from billing.exceptions import BillingError

    purchase = buy(alice)
    buy(alice)  # 100 more credits that a second clawback would wrongly take
    event = make_event(
        "charge.refunded", charge_object(purchase.stripe_payment_intent_id, refunded=1000)
    )
    assert post_event(event).status_code == 200
    item = ReviewItem.objects.get(reason="refund")
    assert (item.taken, item.shortfall) == (100, 0)

    with pytest.raises(BillingError, match="Nothing is left to claw back"):
        reviews.resolve_review(item, actor=staff, decision="clawback", reason="again")

    item.refresh_from_db()
    assert item.is_open and available(alice) == 100


def test_a_resubmitted_resolution_does_nothing(staff, alice, buy, shortfall_item):
    from billing import reviews

    buy(alice)
    first = reviews.resolve_review(
        shortfall_item, actor=staff, decision="clawback", reason="recover"
    )
    again = reviews.resolve_review(
        shortfall_item, actor=staff, decision="clawback", reason="recover"
    )

    assert first.resolution == again.resolution == "clawed_back"
    assert first.resolution_detail == again.resolution_detail
    assert available(alice) == 30
