"""Run a Hypothesis state machine with a printed seed, so a failure can be replayed exactly."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, seed, settings
from hypothesis.stateful import RuleBasedStateMachine


def run_seeded(machine: type[RuleBasedStateMachine], request, *, examples: int, steps: int):
    """Run ``examples`` programs of up to ``steps`` rules; replay with ``--hypothesis-seed``."""
    chosen = request.config.getoption("hypothesis_seed", None)
    chosen = int(chosen) if chosen is not None else random.randrange(2**32)
    print(f"hypothesis seed: {chosen} (replay with --hypothesis-seed={chosen})")
    seed(chosen)(machine)
    case = machine.TestCase
    case.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        print_blob=True,
    )
    case().runTest()
