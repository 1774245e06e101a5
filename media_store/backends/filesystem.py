"""Private objects under MEDIA_ROOT, served by a Django view behind signed expiring tokens."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from django.core import signing
from django.urls import reverse

SALT = "media_store.file"


class FilesystemBackend:
    """Keep objects as files; the signed URL is a token only this app can mint."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        """Return the file for ``key``, refusing anything that escapes the root."""
        root = self.root.resolve()
        path = (root / key).resolve()
        if root not in path.parents:
            raise ValueError(f"storage key escapes MEDIA_ROOT: {key!r}")
        return path

    def put(self, key: str, body: BinaryIO, *, content_type: str, size: int) -> None:
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a file.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            shutil.copyfileobj(body, tmp)
        os.replace(tmp.name, path)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(key).unlink()

    def open(self, key: str) -> BinaryIO:
        return self.path_for(key).open("rb")

    def keys(self, *, prefix: str, modified_before: datetime) -> Iterator[str]:
        """Yield the keys under ``prefix`` whose files were written before ``modified_before``."""
        root = self.root.resolve()
        if not root.is_dir():
            return
        before = modified_before.timestamp()
        for path in root.rglob("*"):
            key = path.relative_to(root).as_posix()
            if key.startswith(prefix) and path.is_file() and path.stat().st_mtime < before:
                yield key

    def signed_url(self, key: str, *, seconds: int, content_type: str) -> str:
        token = signing.dumps(
            {"k": key, "t": content_type, "e": int(time.time()) + seconds}, salt=SALT
        )
        return reverse("media_store:file", kwargs={"token": token})

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def warm_up(self) -> None:
        return None

    def ensure_bucket(self) -> bool:
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        return created


def read_token(token: str) -> tuple[str, str] | None:
    """Return (key, content type) for a valid unexpired token, else None."""
    try:
        data = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or int(data.get("e", 0)) < time.time():
        return None
    return data["k"], data["t"]
