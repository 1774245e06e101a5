"""config.payloads.loads: strict JSON for signed payloads, refused with a reason, never a crash."""

import re

import pytest

from config.payloads import MAX_DEPTH, MalformedPayload, loads


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'\xef\xbb\xbf{"a": 1}', "byte-order mark"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": -Infinity}', "Infinity"),
        (b'{"a": 1e400}', "overflows"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"\\udc00": 1}', "lone surrogate"),
        (b'{"a": "x\\u0000"}', "U+0000"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
        (b'{"a": 1', "not JSON"),
        (b"", "not JSON"),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(body, reason):
    with pytest.raises(MalformedPayload, match=re.escape(reason)):
        loads(body)


def test_strict_json_parses_as_usual():
    body = b'{"id": "evt_1", "n": [1, 2.5, -3e2, null, true], "s": "\\u00e9\\ud83d\\ude00"}'
    depth = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert loads(body) == {"id": "evt_1", "n": [1, 2.5, -300.0, None, True], "s": "é😀"}
    assert loads(depth) is not None
