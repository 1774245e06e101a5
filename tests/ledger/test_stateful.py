"""A Hypothesis state machine drives the ledger against a pure-Python model, step by step."""

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ledger import api
from tests.stateful import run_seeded

TTL = timedelta(minutes=10)


@dataclass
class ModelHold:
    account: int
    amount: int
    status: str = "pending"
    captured: int = 0
    late: str | None = None
    late_amount: int = 0


@dataclass
class Model:
    available: list[int] = field(default_factory=lambda: [0, 0])
    held: list[int] = field(default_factory=lambda: [0, 0])
    keys: dict[str, tuple] = field(default_factory=dict)
    holds: dict[str, ModelHold] = field(default_factory=dict)


class LedgerMachine(RuleBasedStateMachine):
    """Random grants, holds, captures, releases, extends, expiries, adjustments and clawbacks."""

    app_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.accounts = [uuid.uuid4(), uuid.uuid4()]
        self.tag = uuid.uuid4().hex[:8]
        self.model = Model()
        self.refs: list[str] = []
        self.conn = psycopg.connect(self.app_url, autocommit=True)

    def teardown(self) -> None:
        self.conn.close()

    @initialize()
    def start(self) -> None:
        self.refs = [f"{self.tag}-job-{i}" for i in range(4)]

    def _key(self, n: int) -> str:
        return f"{self.tag}-key-{n}"

    @rule(who=st.integers(0, 1), amount=st.integers(1, 50), n=st.integers(0, 5))
    def grant(self, who, amount, n):
        key, m = self._key(n), self.model
        result = api.grant(self.accounts[who], amount, key=key, source="hypothesis")
        prior = m.keys.get(key)
        if prior is None:
            assert result.status == "granted"
            m.keys[key] = ("grant", who, amount)
            m.available[who] += amount
        elif prior == ("grant", who, amount):
            assert result.status == "duplicate"
        else:
            assert result.status == "conflict"
        assert result.available == m.available[who]

    @rule(who=st.integers(0, 1), r=st.integers(0, 3), amount=st.integers(1, 40))
    def hold(self, who, r, amount):
        ref, m = self.refs[r], self.model
        result = api.hold(self.accounts[who], ref, amount, ttl=TTL)
        existing = m.holds.get(ref)
        if existing is not None:
            same = existing.account == who and existing.amount == amount
            assert result.status == ("duplicate" if same else "conflict")
        elif m.available[who] >= amount:
            assert result.status == "held"
            m.holds[ref] = ModelHold(who, amount)
            m.available[who] -= amount
            m.held[who] += amount
        else:
            assert result.status == "insufficient"
        assert result.available == m.available[who]

    @rule(r=st.integers(0, 3), amount=st.one_of(st.none(), st.integers(1, 40)))
    def capture(self, r, amount):
        ref, m = self.refs[r], self.model
        result = api.capture(ref, amount)
        h = m.holds.get(ref)
        if h is None:
            assert result.status == "not_found"
            return
        if h.status == "pending":
            take = h.amount if amount is None else amount
            if take > h.amount:
                assert result.status == "conflict"
                return
            assert (result.status, result.captured) == ("captured", take)
            h.status, h.captured = "captured", take
            m.held[h.account] -= h.amount
            m.available[h.account] += h.amount - take
        elif h.status == "captured" or h.late == "late_charged":
            done = h.captured if h.status == "captured" else h.late_amount
            assert result.status == ("duplicate" if amount in (None, done) else "conflict")
        else:
            take = h.late_amount if h.late == "unpaid" else (h.amount if amount is None else amount)
            if take > h.amount or (amount is not None and amount != take):
                assert result.status == "conflict"
            elif m.available[h.account] >= take:
                assert (result.status, result.captured) == ("late_charged", take)
                h.late, h.late_amount = "late_charged", take
                m.available[h.account] -= take
            else:
                assert result.status == "unpaid"
                h.late, h.late_amount = "unpaid", take
        assert result.available == m.available[h.account]

    @rule(r=st.integers(0, 3))
    def release(self, r):
        ref, m = self.refs[r], self.model
        result = api.release(ref)
        h = m.holds.get(ref)
        if h is None:
            assert result.status == "not_found"
        elif h.status == "pending":
            assert (result.status, result.released) == ("released", h.amount)
            h.status = "released"
            m.held[h.account] -= h.amount
            m.available[h.account] += h.amount
        elif h.status == "captured":
            assert result.status == "already_captured"
        else:
            assert (result.status, result.released) == ("duplicate", h.amount)

    @rule(r=st.integers(0, 3))
    def extend(self, r):
        h = self.model.holds.get(self.refs[r])
        status = api.extend(self.refs[r], ttl=TTL).status
        expected = (
            "not_found" if h is None else ("extended" if h.status == "pending" else "not_pending")
        )
        assert status == expected

    @rule(r=st.integers(0, 3))
    def expire(self, r):
        """Make one pending hold due (as the sweeper would find it) and sweep."""
        ref, m = self.refs[r], self.model
        h = m.holds.get(ref)
        if h is None or h.status != "pending":
            return
        # Only the SQL functions may write; a shorter TTL cannot be set, so expiry is exercised by
        # a hold created already due: release-free path through ledger_expire_due on a fresh hold.
        due_ref = f"{ref}-due"
        if due_ref in m.holds or m.available[h.account] < 1:
            return
        self.conn.execute(
            "SELECT ledger_hold(%s, %s, 1, '1 second')", [self.accounts[h.account], due_ref]
        )
        m.holds[due_ref] = ModelHold(h.account, 1)
        m.available[h.account] -= 1
        m.held[h.account] += 1
        import time

        time.sleep(1.01)
        while api.hold_status(due_ref) == "pending":
            api.expire_due(1000)
        m.holds[due_ref].status = "expired"
        m.held[h.account] -= 1
        m.available[h.account] += 1
        self.refs.append(due_ref)

    @rule(who=st.integers(0, 1), delta=st.integers(-30, 30).filter(bool), n=st.integers(0, 5))
    def adjust(self, who, delta, n):
        key, m = self._key(n), self.model
        result = api.adjust(self.accounts[who], delta, key=key, actor="hypothesis", reason="model")
        prior = m.keys.get(key)
        if prior is None:
            if delta < 0 and m.available[who] < -delta:
                assert result.status == "insufficient"
            else:
                assert result.status == "adjusted"
                m.keys[key] = ("adjust", who, delta)
                m.available[who] += delta
        else:
            assert result.status == ("duplicate" if prior == ("adjust", who, delta) else "conflict")
        assert result.available == m.available[who]

    @rule(who=st.integers(0, 1), amount=st.integers(1, 60), n=st.integers(0, 5))
    def clawback(self, who, amount, n):
        key, m = self._key(n), self.model
        result = api.clawback(self.accounts[who], amount, key=key, source="hypothesis")
        prior = m.keys.get(key)
        if prior is None:
            exists = any(k[1] == who for k in m.keys.values()) or any(
                h.account == who for h in m.holds.values()
            )
            take = min(amount, m.available[who])
            assert (result.taken, result.shortfall) == (take, amount - take)
            assert result.status == ("clawed_back" if take == amount else "partial")
            if exists:
                m.keys[key] = ("clawback", who, amount, take)
                m.available[who] -= take
        elif prior[:3] == ("clawback", who, amount):
            assert (result.status, result.taken) == ("duplicate", prior[3])
        else:
            assert result.status == "conflict"

    @invariant()
    def balances_match_the_model_and_check_is_clean(self):
        for i, account in enumerate(self.accounts):
            assert api.balance(account) == api.Balance(self.model.available[i], self.model.held[i])
        names = [str(a) for a in self.accounts]
        rows = self.conn.execute("SELECT invariant, detail FROM ledger_check()").fetchall()
        assert [r for r in rows if any(n in r[1] for n in names)] == []


@pytest.mark.django_db(transaction=True)
def test_ledger_matches_a_pure_python_model(db_urls, request):
    """Run 200 random programs of 25 steps; the seed is printed, replay with --hypothesis-seed."""
    LedgerMachine.app_url = db_urls.app
    run_seeded(LedgerMachine, request, examples=200, steps=25)
