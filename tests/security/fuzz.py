"""Hypothesis strategies shared by the fuzz tests: hostile bytes, headers and JSON shapes."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Bounded so the whole security suite stays in seconds; raise locally to hunt harder.
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def encoded(value) -> bytes:
    return json.dumps(value).encode()


# Raw bodies: garbage, truncated JSON, huge-but-under-cap padding, wrong encodings.
raw_bodies = st.one_of(
    st.binary(max_size=2048),
    json_values.map(encoded),
    json_values.map(encoded).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),
    st.text(max_size=200).map(lambda t: t.encode("utf-16")),
    st.just(b"{" * 5000),
    st.just(b'{"a": "' + b"x" * 900_000 + b'"}'),
)
signature_headers = st.one_of(
    st.none(),
    st.text(max_size=120),
    st.builds(
        lambda t, v: f"t={t},v1={v}",
        st.integers(min_value=-(2**40), max_value=2**40),
        st.text(alphabet="0123456789abcdef", max_size=70),
    ),
)
