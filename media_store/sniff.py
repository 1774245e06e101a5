"""Recognise media by its bytes, never by what the sender claims, and read its dimensions."""

from __future__ import annotations

import io
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


def inspect(body: BinaryIO, content_type: str, *, max_pixels: int) -> MediaInfo:
    """Validate the whole file for its sniffed type and return its dimensions or duration."""
    body.seek(0)
    if content_type in IMAGE_TYPES:
        return _inspect_image(body, content_type, max_pixels=max_pixels)
    if content_type == "video/mp4":
        return _inspect_mp4(body)
    return MediaInfo(content_type, duration_ms=_webm_duration_ms(body))


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
        raise IngestRefused("unsupported_type", f"unreadable image: {error}") from None
    return MediaInfo(content_type, width=width, height=height)


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
        out = io.BytesIO()
        frame.save(out, format="WEBP", quality=80)
        return out.getvalue()


def _boxes(body: BinaryIO, start: int, end: int):
    """Yield (type, payload start, payload end) for the ISO-BMFF boxes in [start, end)."""
    offset = start
    while offset + 8 <= end:
        body.seek(offset)
        size, kind = struct.unpack(">I4s", body.read(8))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", body.read(8))
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise IngestRefused("unsupported_type", "malformed MP4 box")
        yield kind, offset + header, offset + size
        offset += size


def _inspect_mp4(body: BinaryIO) -> MediaInfo:
    end = body.seek(0, io.SEEK_END)
    duration_ms = width = height = None
    for kind, start, stop in _boxes(body, 0, end):
        if kind != b"moov":
            continue
        for inner, istart, istop in _boxes(body, start, stop):
            if inner == b"mvhd":
                body.seek(istart)
                version = body.read(1)[0]
                if version == 1:
                    body.seek(istart + 20)
                    timescale, duration = struct.unpack(">IQ", body.read(12))
                else:
                    body.seek(istart + 12)
                    timescale, duration = struct.unpack(">II", body.read(8))
                if timescale:
                    duration_ms = duration * 1000 // timescale
            elif inner == b"trak" and width is None:
                width, height = _track_size(body, istart, istop)
    if duration_ms is None:
        raise IngestRefused("unsupported_type", "MP4 without a movie header")
    return MediaInfo(
        "video/mp4", width=width or None, height=height or None, duration_ms=duration_ms
    )


def _track_size(body: BinaryIO, start: int, stop: int) -> tuple[int | None, int | None]:
    for kind, bstart, bstop in _boxes(body, start, stop):
        if kind == b"tkhd" and bstop - bstart >= 84:
            body.seek(bstart)
            version = body.read(1)[0]
            body.seek(bstart + (88 if version == 1 else 76))
            width, height = struct.unpack(">II", body.read(8))
            if width and height:
                return width >> 16, height >> 16
    return None, None


def _ebml_vint(body: BinaryIO, *, keep_marker: bool) -> int | None:
    first = body.read(1)
    if not first:
        return None
    length = 8 - first[0].bit_length() + 1
    if length > 8:
        return None
    value = first[0] if keep_marker else first[0] & ((1 << (8 - length)) - 1)
    for byte in body.read(length - 1):
        value = (value << 8) | byte
    return value


def _webm_duration_ms(body: BinaryIO) -> int | None:
    """Read Segment > Info > Duration; live recordings legitimately have none."""
    end = body.seek(0, io.SEEK_END)
    body.seek(0)
    scale, duration = 1_000_000, None
    containers = {0x18538067, 0x1549A966}  # Segment, Info: descend into these.
    while body.tell() < end:
        element = _ebml_vint(body, keep_marker=True)
        size = _ebml_vint(body, keep_marker=False)
        if element is None or size is None:
            break
        if element in containers:
            continue
        payload = body.read(min(size, 8)) if element in (0x2AD7B1, 0x4489) else None
        if element == 0x2AD7B1:
            scale = int.from_bytes(payload, "big")
        elif element == 0x4489:
            duration = struct.unpack(">f" if len(payload) == 4 else ">d", payload)[0]
        elif element == 0x1F43B675:  # Cluster: Info always comes before it.
            break
        else:
            body.seek(size, io.SEEK_CUR)
    if duration is None:
        return None
    return int(duration * scale / 1_000_000)
