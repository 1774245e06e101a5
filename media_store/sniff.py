"""Recognise media by its bytes, never by what the sender claims, and read its dimensions.

Every byte here comes from a provider we do not control, so ``examine`` is the one entry point
ingest uses and it raises nothing but ``IngestRefused``: a parser or codec that trips on bytes
that lie about themselves is a refusal, never a crash (tests/media_store/test_sniff_fuzz.py).
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import BinaryIO

from media_store.exceptions import IngestRefused

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
VIDEO_TYPES = {"video/mp4": "mp4", "video/webm": "webm"}
EXTENSIONS = {**IMAGE_TYPES, **VIDEO_TYPES}
PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
}
# ISO base media brands that are MP4 video; HEIC, AVIF and QuickTime share the container.
MP4_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash"}
MP4_BRANDS |= {b"M4V ", b"mmp4", b"msnv"}
HEAD_BYTES = 64
# Asset.duration_ms is a PostgreSQL integer.
MAX_DURATION_MS = 2**31 - 1
# A poster needs one frame; a stream that yields none within this many packets is refused.
POSTER_MAX_PACKETS = 300

# Matroska element ids (https://www.matroska.org/technical/elements.html).
EBML, SEGMENT, INFO, TRACKS, CLUSTER = 0x1A45DFA3, 0x18538067, 0x1549A966, 0x1654AE6B, 0x1F43B675
DOC_TYPE, TIMECODE_SCALE, DURATION = 0x4282, 0x2AD7B1, 0x4489


@dataclass(frozen=True)
class MediaInfo:
    content_type: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


def sniff(head: bytes) -> str | None:
    """Return the content type the leading bytes prove, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in MP4_BRANDS:
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"\x42\x82\x84webm" in head[:HEAD_BYTES]:
        return "video/webm"
    return None


def examine(
    body: BinaryIO, head: bytes, *, max_pixels: int, preview_pixels: int
) -> tuple[MediaInfo, bytes | None]:
    """Sniff, validate and preview one download; raise only ``IngestRefused``.

    The preview is a WebP no larger than ``preview_pixels``: an image's thumbnail, or a video's
    poster (its first frame). A video whose frames do not decode is refused like a broken image.
    """
    content_type = sniff(head)
    if content_type is None:
        raise IngestRefused("unsupported_type", "not PNG, JPEG, WebP, GIF, MP4 or WebM")
    try:
        info = inspect(body, content_type, max_pixels=max_pixels)
        if content_type in IMAGE_TYPES:
            preview = thumbnail(body, pixels=preview_pixels)
        else:
            preview, info = _poster(body, info, max_pixels=max_pixels, pixels=preview_pixels)
    except IngestRefused:
        raise
    except Exception as error:
        # Pillow, PyAV and struct raise whatever they like on bytes that lie about themselves.
        raise IngestRefused("corrupt", f"{content_type} does not decode: {error!r:.300}") from None
    return info, preview


def inspect(body: BinaryIO, content_type: str, *, max_pixels: int) -> MediaInfo:
    """Validate the whole file for its sniffed type and return its dimensions or duration."""
    body.seek(0)
    if content_type in IMAGE_TYPES:
        return _inspect_image(body, content_type, max_pixels=max_pixels)
    if content_type == "video/mp4":
        return _inspect_mp4(body)
    return _inspect_webm(body)


def _inspect_image(body: BinaryIO, content_type: str, *, max_pixels: int) -> MediaInfo:
    from PIL import Image

    try:
        with Image.open(body) as image:
            if image.format != PILLOW_FORMATS[content_type]:
                raise IngestRefused("unsupported_type", f"bytes say {content_type}, image does not")
            width, height = image.size
            if width * height > max_pixels:
                raise IngestRefused("too_large", f"{width}x{height} is over {max_pixels} pixels")
            image.verify()
    except IngestRefused:
        raise
    except Exception as error:
        raise IngestRefused("corrupt", f"unreadable image: {error}") from None
    return MediaInfo(content_type, width=width, height=height)


def _webp(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=80)
    return out.getvalue()


def thumbnail(body: BinaryIO, *, pixels: int) -> bytes:
    """Return a WebP thumbnail no larger than ``pixels`` on its longer side (first frame)."""
    from PIL import Image, ImageOps

    body.seek(0)
    with Image.open(body) as image:
        image.seek(0)
        frame = ImageOps.exif_transpose(image)
        frame = frame.convert(
            "RGBA" if "A" in frame.getbands() or "transparency" in frame.info else "RGB"
        )
        frame.thumbnail((pixels, pixels))
        return _webp(frame)


def _poster(
    body: BinaryIO, info: MediaInfo, *, max_pixels: int, pixels: int
) -> tuple[bytes, MediaInfo]:
    """Decode the first video frame into a WebP poster; fill in what the container left out."""
    import av

    body.seek(0)
    with av.open(body, mode="r") as container:
        if not container.streams.video:
            raise IngestRefused("corrupt", f"{info.content_type} without a video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise IngestRefused("too_large", f"{width}x{height} is over {max_pixels} pixels")
        frame = None
        for count, packet in enumerate(container.demux(stream)):
            frames = packet.decode()
            if frames:
                frame = frames[0]
                break
            if count >= POSTER_MAX_PACKETS:
                break
        if frame is None:
            raise IngestRefused("corrupt", f"no frame of the {info.content_type} decodes")
        duration_ms = info.duration_ms
        if duration_ms is None and container.duration:
            duration_ms = _checked_duration(container.duration / 1000)
    image = frame.to_image()
    image.thumbnail((pixels, pixels))
    return _webp(image), MediaInfo(
        info.content_type,
        width=info.width or width or None,
        height=info.height or height or None,
        duration_ms=duration_ms,
    )


def _checked_duration(milliseconds: float) -> int:
    if not math.isfinite(milliseconds) or not 0 <= milliseconds <= MAX_DURATION_MS:
        raise IngestRefused("corrupt", f"impossible duration {milliseconds!r} ms")
    return int(milliseconds)


def _read(body: BinaryIO, count: int) -> bytes:
    data = body.read(count)
    if len(data) != count:
        raise IngestRefused("corrupt", "the file ends in the middle of a structure")
    return data


# MP4 (ISO base media file format)


def _boxes(body: BinaryIO, start: int, end: int):
    """Yield (type, payload start, payload end) for the ISO-BMFF boxes in [start, end)."""
    offset = start
    while offset < end:
        if offset + 8 > end:
            raise IngestRefused("corrupt", "truncated MP4 box header")
        body.seek(offset)
        size, kind = struct.unpack(">I4s", _read(body, 8))
        header = 8
        if size == 1:
            if offset + 16 > end:
                raise IngestRefused("corrupt", "truncated MP4 box header")
            (size,) = struct.unpack(">Q", _read(body, 8))
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise IngestRefused("corrupt", f"MP4 box {kind!r} runs past its container")
        yield kind, offset + header, offset + size
        offset += size


def _inspect_mp4(body: BinaryIO) -> MediaInfo:
    """Require ftyp first, a movie header, a video track and media data; read size and length."""
    end = body.seek(0, io.SEEK_END)
    seen: list[bytes] = []
    duration_ms = None
    video: tuple[int, int] | None = None
    for kind, start, stop in _boxes(body, 0, end):
        seen.append(kind)
        if kind != b"moov":
            continue
        for inner, istart, istop in _boxes(body, start, stop):
            if inner == b"mvhd":
                duration_ms = _mvhd_duration_ms(body, istart, istop)
            elif inner == b"trak" and video is None:
                video = _video_track_size(body, istart, istop)
    if not seen or seen[0] != b"ftyp":
        raise IngestRefused("corrupt", "MP4 that does not start with ftyp")
    if b"moov" not in seen or duration_ms is None:
        raise IngestRefused("corrupt", "MP4 without a movie header")
    if video is None:
        raise IngestRefused("corrupt", "MP4 without a video track")
    if b"mdat" not in seen:
        raise IngestRefused("corrupt", "MP4 without media data")
    width, height = video
    return MediaInfo(
        "video/mp4", width=width or None, height=height or None, duration_ms=duration_ms
    )


def _mvhd_duration_ms(body: BinaryIO, start: int, stop: int) -> int | None:
    body.seek(start)
    version = _read(body, 1)[0]
    layout, offset = (">IQ", 20) if version == 1 else (">II", 12)
    if start + offset + struct.calcsize(layout) > stop:
        raise IngestRefused("corrupt", "truncated MP4 movie header")
    body.seek(start + offset)
    timescale, duration = struct.unpack(layout, _read(body, struct.calcsize(layout)))
    return _checked_duration(duration * 1000 / timescale) if timescale else None


def _video_track_size(body: BinaryIO, start: int, stop: int) -> tuple[int, int] | None:
    """Return the (width, height) of a track whose handler is ``vide``, else None."""
    size, handler = (0, 0), b""
    for kind, bstart, bstop in _boxes(body, start, stop):
        if kind == b"tkhd" and bstop - bstart >= 84:
            body.seek(bstart)
            version = _read(body, 1)[0]
            offset = 88 if version == 1 else 76
            if bstart + offset + 8 <= bstop:
                body.seek(bstart + offset)
                width, height = struct.unpack(">II", _read(body, 8))
                size = (width >> 16, height >> 16)
        elif kind == b"mdia":
            for inner, istart, istop in _boxes(body, bstart, bstop):
                if inner == b"hdlr" and istop - istart >= 12:
                    body.seek(istart + 8)
                    handler = _read(body, 4)
    return size if handler == b"vide" else None


# WebM (Matroska)


def _vint(body: BinaryIO, *, keep_marker: bool) -> tuple[int, bool]:
    """Read an EBML variable-length integer; return it and whether it means 'unknown size'."""
    first = _read(body, 1)[0]
    if first == 0:
        raise IngestRefused("corrupt", "invalid EBML number")
    length = 9 - first.bit_length()
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for byte in _read(body, length - 1):
        value = (value << 8) | byte
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, unknown


def _inspect_webm(body: BinaryIO) -> MediaInfo:
    """Require a webm EBML header, a Segment with Tracks and a Cluster; read the Duration."""
    end = body.seek(0, io.SEEK_END)
    body.seek(0)
    scale, duration = 1_000_000, None
    doc_type = b""
    seen: set[int] = set()
    descend = {EBML, SEGMENT, INFO}
    while body.tell() < end:
        element, _ = _vint(body, keep_marker=True)
        size, unknown = _vint(body, keep_marker=False)
        seen.add(element)
        if element == CLUSTER:  # Info and Tracks always come before the first Cluster.
            break
        if element in descend:
            if not unknown and body.tell() + size > end:
                raise IngestRefused("corrupt", f"WebM element {element:#x} runs past the file")
            continue
        if unknown or body.tell() + size > end:
            raise IngestRefused("corrupt", f"WebM element {element:#x} runs past the file")
        if element in (DOC_TYPE, TIMECODE_SCALE, DURATION):
            payload = _read(body, min(size, 64))
            body.seek(size - len(payload), io.SEEK_CUR)
            if element == DOC_TYPE:
                doc_type = payload.rstrip(b"\0")
            elif element == TIMECODE_SCALE:
                scale = int.from_bytes(payload, "big")
            elif len(payload) in (4, 8):
                duration = struct.unpack(">f" if len(payload) == 4 else ">d", payload)[0]
                _checked_duration(duration)
        else:
            body.seek(size, io.SEEK_CUR)
    if doc_type != b"webm":
        raise IngestRefused("corrupt", "EBML file whose DocType is not webm")
    if SEGMENT not in seen or TRACKS not in seen or CLUSTER not in seen:
        raise IngestRefused("corrupt", "WebM without tracks or media clusters")
    duration_ms = None if duration is None else _checked_duration(duration * scale / 1_000_000)
    return MediaInfo("video/webm", duration_ms=duration_ms)
