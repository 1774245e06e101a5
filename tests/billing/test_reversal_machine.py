"""A Hypothesis state machine plays one payment's grant, refunds and disputes in any order.

Each step is a signed event delivered to the real webhook (or the user spending, holding or
releasing credits through the ledger). After every step the credits the user keeps from the
payment, read from the ledger's journal, must equal a plain-Python model's; ``ledger_check()``
must be clean and no balance negative.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db import connections
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from billing.models import PaymentReversal
from billing.reversals import reconcile_reversals
from ledger import api as ledger
from tests.billing.conftest import charge_object, dispute_object, make_event
from tests.stateful import run_seeded

CREDITS = 100
PAID = 1000
CHARGES = ("ch_first", "ch_retry")  # two charge ids of one payment
DISPUTES = {"dp_whole": PAID, "dp_part": 400}
# (event type, dispute status): every way Stripe reports a dispute, open or closed.
DISPUTE_NEWS = [
    ("charge.dispute.created", "warning_needs_response"),
    ("charge.dispute.created", "needs_response"),
    ("charge.dispute.funds_withdrawn", "needs_response"),
    ("charge.dispute.updated", "under_review"),
    ("charge.dispute.updated", "warning_under_review"),
    ("charge.dispute.closed", "won"),
    ("charge.dispute.funds_reinstated", "won"),
    ("charge.dispute.closed", "lost"),
    ("charge.dispute.closed", "warning_closed"),
]
RETURNED = {"won", "warning_closed", "prevented"}
REFUND_LEVELS = [1, 99, 333, 500, 999, PAID]
# Most events arrive; some never do until reconciliation lists them.
DELIVERED = st.sampled_from([True, True, True, False])
EXAMPLES = 30
STEPS = 20


@dataclass
class PaymentModel:
    """What the credits should be, computed the plain way."""

    granted: bool = False
    refunds: dict[str, int] = field(default_factory=dict)
    disputes: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> amount, outcome
    available: int = 0
    held: int = 0
    taken: int = 0
    short: int = 0

    def target(self) -> int:
        if not self.granted:
            return 0
        disputed = sum(a for a, outcome in self.disputes.values() if outcome != "won")
        lost = min(PAID, sum(self.refunds.values()) + disputed)
        return CREDITS * lost // PAID

    def refunded(self, charge: str, amount: int) -> None:
        self.refunds[charge] = max(self.refunds.get(charge, 0), amount)
        self.settle()

    def disputed(self, dispute: str, status: str) -> None:
        """A dispute's first final status sticks; open statuses count as money at risk."""
        outcome = "won" if status in RETURNED else "lost" if status == "lost" else ""
        amount, known = self.disputes.get(dispute, (DISPUTES[dispute], ""))
        self.disputes[dispute] = (amount, known or outcome)
        self.settle()

    def settle(self) -> None:
        """Take back up to the target (never below zero), or give back, forgiving short first."""
        claimed = self.taken + self.short
        target = self.target()
        if target > claimed:
            wanted = target - claimed
            took = min(wanted, self.available)
            self.available -= took
            self.taken += took
            self.short += wanted - took
        elif target < claimed:
            excess = claimed - target
            forgiven = min(excess, self.short)
            self.short -= forgiven
            self.taken -= excess - forgiven
            self.available += excess - forgiven


class PaymentMachine(RuleBasedStateMachine):
    """One user, one 100-credit purchase paid 1000, and everything Stripe may say about it."""

    post_event = None
    fake_stripe = None
    make_purchase = None

    def __init__(self) -> None:
        super().__init__()
        self.model = PaymentModel()
        self.sent: list[dict] = []
        self.holds: list[tuple[str, int]] = []
        # What Stripe itself holds, delivered or not: each charge's cumulative refund, each
        # dispute's state (its first final status sticks).
        self.stripe_refunds: dict[str, int] = {}
        self.stripe_disputes: dict[str, str] = {}

    def teardown(self) -> None:
        fake = type(self).fake_stripe
        fake.charges.clear()
        fake.refunds.clear()
        fake.disputes.clear()
        # Each example starts on a fresh connection, whatever a failing one left behind.
        connections.close_all()

    @initialize()
    def paid_at_stripe(self) -> None:
        """The buyer paid: Stripe knows the session and its intent; we have heard nothing."""
        self.user, checkout = type(self).make_purchase()
        self.session = type(self).fake_stripe.complete(checkout.stripe_session_id)
        self.intent = self.session["payment_intent"]

    def deliver(self, event: dict) -> None:
        response = type(self).post_event(event)
        assert response.status_code == 200, response.content
        self.sent.append(event)

    @rule()
    def grant(self) -> None:
        self.deliver(make_event("checkout.session.completed", self.session))
        if not self.model.granted:
            self.model.granted = True
            self.model.available += CREDITS
            self.model.settle()

    @rule(
        charge=st.sampled_from(CHARGES),
        refunded=st.sampled_from(REFUND_LEVELS),
        delivered=DELIVERED,
    )
    def refund(self, charge: str, refunded: int, delivered: bool) -> None:
        """A refund, partial or whole; a smaller amount than before is an older delivery. An
        undelivered one (endpoint down, blocked) is left for reconciliation."""
        charge_id = f"{charge}_{self.intent}"
        truth = max(self.stripe_refunds.get(charge, 0), refunded)
        self.stripe_refunds[charge] = truth
        fake = type(self).fake_stripe
        fake.charges[charge_id] = charge_object(
            self.intent, refunded=truth, amount=PAID, charge_id=charge_id
        )
        fake.refunds.append(
            {"id": f"re_{uuid.uuid4().hex}", "charge": charge_id, "created": int(time.time())}
        )
        if delivered:
            data = charge_object(self.intent, refunded=refunded, amount=PAID, charge_id=charge_id)
            self.deliver(make_event("charge.refunded", data))
            self.model.refunded(charge, refunded)

    @rule(
        dispute=st.sampled_from(sorted(DISPUTES)),
        news=st.sampled_from(DISPUTE_NEWS),
        delivered=DELIVERED,
    )
    def dispute(self, dispute: str, news: tuple[str, str], delivered: bool) -> None:
        kind, status = news
        known = self.stripe_disputes.get(dispute, "")
        if known not in RETURNED | {"lost"}:
            self.stripe_disputes[dispute] = status
        dispute_id = f"{dispute}_{self.intent}"
        type(self).fake_stripe.disputes[dispute_id] = {
            "created": int(time.time()),
            **self._dispute(dispute, self.stripe_disputes[dispute]),
        }
        if delivered:
            self.deliver(make_event(kind, self._dispute(dispute, status)))
            self.model.disputed(dispute, status)

    def _dispute(self, dispute: str, status: str) -> dict:
        return dispute_object(
            self.intent,
            status=status,
            amount=DISPUTES[dispute],
            dispute_id=f"{dispute}_{self.intent}",
        )

    @rule()
    def reconcile(self) -> None:
        """The beat job lists what Stripe holds and applies what we have not seen."""
        reconcile_reversals(lookback=timedelta(hours=1))
        for charge, amount in self.stripe_refunds.items():
            self.model.refunded(charge, amount)
        for dispute, status in self.stripe_disputes.items():
            self.model.disputed(dispute, status)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def redeliver(self, data) -> None:
        """Stripe delivers an event again (same id): nothing moves."""
        event = data.draw(st.sampled_from(self.sent))
        self.deliver(event)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def resend_later(self, data) -> None:
        """An old state arrives again under a new event id, after newer ones: nothing moves."""
        event = data.draw(st.sampled_from(self.sent))
        self.deliver(make_event(event["type"], event["data"]["object"], expanded=True))

    @rule(credits=st.integers(1, 80))
    def spend(self, credits: int) -> None:
        credits = min(credits, self.model.available)
        if credits:
            reference = f"machine-spend-{uuid.uuid4()}"
            assert (
                ledger.hold(self.user.pk, reference, credits, ttl=timedelta(minutes=5)).status
                == "held"
            )
            assert ledger.capture(reference).status == "captured"
            self.model.available -= credits

    @rule(credits=st.integers(1, 80))
    def hold(self, credits: int) -> None:
        credits = min(credits, self.model.available)
        if credits:
            reference = f"machine-hold-{uuid.uuid4()}"
            assert (
                ledger.hold(self.user.pk, reference, credits, ttl=timedelta(minutes=30)).status
                == "held"
            )
            self.holds.append((reference, credits))
            self.model.available -= credits
            self.model.held += credits

    @precondition(lambda self: self.holds)
    @rule()
    def release(self) -> None:
        reference, credits = self.holds.pop(0)
        assert ledger.release(reference).status == "released"
        self.model.available += credits
        self.model.held -= credits

    @invariant()
    def credits_kept_match_the_model(self) -> None:
        if not hasattr(self, "user"):
            return
        kept = _credits_kept(self.user.pk)
        expected = CREDITS - self.model.taken if self.model.granted else 0
        assert kept == expected, (kept, self.model)
        assert 0 <= kept <= CREDITS
        balance = ledger.balance(self.user.pk)
        assert (balance.available, balance.held) == (self.model.available, self.model.held)
        assert balance.available >= 0 and balance.held >= 0
        account = PaymentReversal.objects.filter(stripe_payment_intent_id=self.intent).first()
        if account is not None:
            assert (account.credits_taken, account.credits_short) == (
                self.model.taken,
                self.model.short,
            )
        mine = str(self.user.pk)
        assert [v for v in ledger.check() if mine in v.detail] == []


def _credits_kept(account_id) -> int:
    """Sum the journal's movements from the purchase and its reversals (the grant and the
    clawbacks and grants-back keyed by the payment's account)."""
    with ledger.reading_as_staff() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(available_delta), 0) FROM ledger_entry "
            "WHERE account_id = %s AND source IN ('stripe_checkout', 'stripe_reversal')",
            [account_id],
        )
        return cursor.fetchone()[0]


# A passing run takes well under a minute; a failing one may shrink for Hypothesis's five
# minutes before it reports the shortest sequence, which the default 300 s timeout would cut.
@pytest.mark.timeout(900)
@pytest.mark.django_db(transaction=True)
def test_reversal_account_matches_a_plain_model(
    post_event, fake_stripe, pack, user_factory, request
):
    """Run EXAMPLES random event programs of up to STEPS steps; the seed is printed."""
    from billing import checkout

    def make_purchase():
        user = user_factory()
        return user, checkout.start_checkout(user, pack)

    PaymentMachine.post_event = staticmethod(post_event)
    PaymentMachine.fake_stripe = fake_stripe
    PaymentMachine.make_purchase = staticmethod(make_purchase)
    started = time.monotonic()
    run_seeded(PaymentMachine, request, examples=EXAMPLES, steps=STEPS)
    print(f"{EXAMPLES} examples of up to {STEPS} steps in {time.monotonic() - started:.1f}s")
