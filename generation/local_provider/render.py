"""Render real images, animations and videos from a prompt (deterministic per prompt).

Frames are drawn with Pillow; videos are encoded with PyAV's bundled FFmpeg: H.264 in MP4 (what
every browser plays) or VP9 in WebM.
"""

import hashlib
import io
import math
import os
import tempfile

from PIL import Image, ImageDraw

RATIOS = {"1:1": (1, 1), "16:9": (16, 9), "9:16": (9, 16), "4:3": (4, 3)}


def _size(ratio: str, base: int) -> tuple[int, int]:
    wide, tall = RATIOS.get(ratio, (1, 1))
    scale = base / max(wide, tall)
    return max(16, round(wide * scale)), max(16, round(tall * scale))


def _palette(prompt: str, index: int) -> list[tuple[int, int, int]]:
    digest = hashlib.sha256(f"{index}:{prompt}".encode()).digest()
    return [tuple(digest[i : i + 3]) for i in range(0, 24, 3)]  # type: ignore[misc]


def _frame(prompt: str, size: tuple[int, int], index: int, phase: float) -> Image.Image:
    width, height = size
    colors = _palette(prompt, index)
    image = Image.new("RGB", size, colors[0])
    draw = ImageDraw.Draw(image)
    top, bottom = colors[1], colors[2]
    for y in range(0, height, 4):
        mix = y / max(height - 1, 1)
        color = tuple(round(top[c] * (1 - mix) + bottom[c] * mix) for c in range(3))
        draw.rectangle((0, y, width, y + 3), fill=color)
    for shape, color in enumerate(colors[3:7]):
        angle = phase * 2 * math.pi + shape * 1.7
        cx = width / 2 + math.cos(angle) * width * (0.15 + 0.06 * shape)
        cy = height / 2 + math.sin(angle) * height * (0.15 + 0.05 * shape)
        radius = min(width, height) * (0.08 + 0.03 * shape)
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=color)
    draw.text((6, height - 16), prompt[:40], fill=colors[7])
    return image


def render_image(prompt: str, *, ratio: str, fmt: str, index: int = 0, base: int = 256) -> bytes:
    """Return one still image (PNG, WebP or JPEG bytes)."""
    image = _frame(prompt, _size(ratio, base), index, 0.0)
    buffer = io.BytesIO()
    pil_format = {"png": "PNG", "webp": "WEBP", "jpg": "JPEG", "jpeg": "JPEG"}.get(fmt, "PNG")
    image.save(buffer, format=pil_format)
    return buffer.getvalue()


def render_animation(prompt: str, *, ratio: str, seconds: int, base: int = 192) -> bytes:
    """Return a looping animated WebP of ``seconds`` at 4 frames per second (at most 24 frames)."""
    frames_count = max(2, min(24, seconds * 4))
    size = _size(ratio, base)
    frames = [_frame(prompt, size, 0, step / frames_count) for step in range(frames_count)]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=250,
        loop=0,
        quality=60,
    )
    return buffer.getvalue()


# Output format: (container, encoder, content type).
VIDEO_FORMATS = {
    "mp4": ("mp4", "libx264", "video/mp4"),
    "webm": ("webm", "libvpx-vp9", "video/webm"),
}
VIDEO_FPS = 12
RESOLUTIONS = {"480p": 480, "720p": 720}


def render_video(
    prompt: str, *, ratio: str, seconds: int, fmt: str = "mp4", base: int = 480
) -> bytes:
    """Return a real ``seconds``-long video (H.264 MP4 or VP9 WebM) at 12 frames per second.

    ``base`` is the longer side in pixels. The MP4 is written with its index first
    (``faststart``) so a browser can start playing before the whole file arrives.
    """
    import av

    container_format, encoder, _ = VIDEO_FORMATS[fmt]
    width, height = (side // 2 * 2 for side in _size(ratio, base))  # yuv420p needs even sides
    frames = max(2, seconds * VIDEO_FPS)
    # FFmpeg's faststart rewrites the file by name, so the muxer writes to a real file.
    handle, path = tempfile.mkstemp(suffix=f".{container_format}")
    os.close(handle)
    try:
        options = {"movflags": "+faststart"} if container_format == "mp4" else {}
        with av.open(path, mode="w", format=container_format, options=options) as output:
            stream = output.add_stream(encoder, rate=VIDEO_FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = (
                {"preset": "veryfast", "crf": "28"}
                if encoder == "libx264"
                else {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0"}
            )
            for step in range(frames):
                image = _frame(prompt, (width, height), 0, step / frames)
                output.mux(stream.encode(av.VideoFrame.from_image(image)))
            output.mux(stream.encode(None))
        with open(path, "rb") as rendered:
            return rendered.read()
    finally:
        os.unlink(path)


CONTENT_TYPES = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg"}
