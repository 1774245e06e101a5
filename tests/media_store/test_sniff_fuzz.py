"""Bytes that lie: truncated and corrupt media is refused with IngestRefused, never a crash.

``sniff.examine`` is what ingest runs on every download. Hypothesis cuts, flips and splices real
PNG, JPEG, WebP, GIF, MP4 and WebM files; whatever it makes must either be accepted as the type
its bytes claim or be refused with ``IngestRefused``, the one error the settle step turns into a
failed generation (anything else would crash the task and download the output again on retry).
"""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_store import api, sniff
from tests.media_store.conftest import image_bytes, mp4_bytes, webm_bytes

SAMPLES = {
    "image/png": image_bytes("PNG", (40, 30)),
    "image/jpeg": image_bytes("JPEG", (40, 30)),
    "image/webp": image_bytes("WEBP", (40, 30)),
    "image/gif": image_bytes("GIF", (40, 30)),
    "video/mp4": mp4_bytes(1, 96),
    "video/webm": webm_bytes(1, 96),
}
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def examine(data: bytes):
    return sniff.examine(io.BytesIO(data), data[:64], max_pixels=4_000_000, preview_pixels=64)


def accepted_or_refused(data: bytes) -> None:
    """The property: a result of the claimed type, or IngestRefused; nothing else escapes."""
    try:
        info, preview = examine(data)
    except api.IngestRefused as refusal:
        assert refusal.reason in ("unsupported_type", "corrupt", "too_large")
        assert refusal.customer_message
        return
    assert info.content_type == sniff.sniff(data[:64])
    assert preview and preview[:4] == b"RIFF"


@pytest.mark.parametrize("content_type", SAMPLES)
def test_every_sample_is_accepted_whole(content_type):
    """The seeds themselves are valid, so the fuzzing starts from files that pass."""
    info, preview = examine(SAMPLES[content_type])
    assert info.content_type == content_type
    assert (info.width, info.height) in ((40, 30), (96, 72))
    assert preview[:4] == b"RIFF"


@pytest.mark.parametrize("content_type", SAMPLES)
@FUZZ
@given(data=st.data())
def test_truncated_media_is_refused_or_accepted_never_crashes(content_type, data):
    sample = SAMPLES[content_type]
    cut = data.draw(st.integers(min_value=0, max_value=len(sample) - 1), label="cut")
    accepted_or_refused(sample[:cut])


@pytest.mark.parametrize("content_type", SAMPLES)
@FUZZ
@given(data=st.data())
def test_corrupted_media_is_refused_or_accepted_never_crashes(content_type, data):
    sample = bytearray(SAMPLES[content_type])
    edits = data.draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=len(sample) - 1),
                st.binary(min_size=1, max_size=8),
            ),
            min_size=1,
            max_size=6,
        ),
        label="edits",
    )
    for offset, junk in edits:
        sample[offset : offset + len(junk)] = junk
    accepted_or_refused(bytes(sample))


@pytest.mark.parametrize("content_type", ["video/mp4", "video/webm"])
@FUZZ
@given(cut=st.floats(min_value=0.05, max_value=0.95))
def test_a_video_cut_short_is_refused(content_type, cut):
    """A download that stopped early is never stored as a video that cannot play to its end."""
    sample = SAMPLES[content_type]
    with pytest.raises(api.IngestRefused):
        examine(sample[: int(len(sample) * cut)])


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _ebml(element_id: bytes, payload: bytes) -> bytes:
    return element_id + bytes([0x80 | len(payload)]) + payload


FTYP = _box(b"ftyp", b"isom\0\0\0\0isomavc1")
WEBM_HEADER = _ebml(b"\x1a\x45\xdf\xa3", _ebml(b"\x42\x82", b"webm"))


def _webm_with_duration(duration: bytes) -> bytes:
    info = _ebml(b"\x15\x49\xa9\x66", _ebml(b"\x44\x89", duration))
    return WEBM_HEADER + _ebml(b"\x18\x53\x80\x67", info)


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        # A box claiming 4 GiB: its size runs past the file.
        (FTYP + struct.pack(">I4s", 2**32 - 1, b"moov"), "runs past"),
        # A movie header cut to nothing at the end of the file (was IndexError).
        (FTYP + _box(b"moov", _box(b"mvhd", b"")), "ends in the middle"),
        # A duration of 2**32 - 1 seconds: too long for the asset row (was a DataError).
        (
            FTYP + _box(b"moov", _box(b"mvhd", bytes(12) + struct.pack(">II", 1, 2**32 - 1))),
            "impossible duration",
        ),
        # A movie with no video track (an audio-only file, say).
        (FTYP + _box(b"moov", _box(b"mvhd", bytes(12) + struct.pack(">II", 1000, 10))), "video"),
        # WebM Duration of three bytes (was struct.error) and of NaN (was ValueError).
        (_webm_with_duration(b"\x00\x01\x02"), "tracks"),
        (_webm_with_duration(struct.pack(">d", float("nan"))), "impossible duration"),
        # WebM whose Segment claims more bytes than the file has.
        (WEBM_HEADER + b"\x18\x53\x80\x67\x90" + bytes(8), "runs past"),
    ],
)
def test_structural_lies_are_named_in_the_refusal(data, detail):
    """Each lie that used to escape as struct.error, IndexError, ValueError or a DataError."""
    with pytest.raises(api.IngestRefused, match=detail) as refused:
        examine(data)
    assert refused.value.reason == "corrupt"
