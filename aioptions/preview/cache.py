"""On-disk preview cache under MEDIA_ROOT/preview-cache: content-addressed WAV files, LRU by
mtime (touched on every hit), capped in bytes, survives restarts; atomic writes."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


class PreviewCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def path(self, key: str) -> Path:
        return self.root / f"{key}.wav"

    def get(self, key: str) -> bytes | None:
        p = self.path(key)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return None
        now = time.time()
        os.utime(p, (now, now))  # most recently used
        return data

    def put(self, key: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path(key))
        self.evict()

    def entries(self) -> list[tuple[float, int, Path]]:
        if not self.root.exists():
            return []
        out = []
        for p in self.root.glob("*.wav"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            out.append((st.st_mtime, st.st_size, p))
        return sorted(out)

    def size(self) -> int:
        return sum(s for _, s, _ in self.entries())

    def evict(self) -> list[Path]:
        """Drop least-recently-used files until the cache fits its cap."""
        entries = self.entries()
        total = sum(s for _, s, _ in entries)
        removed = []
        for _, size, p in entries:
            if total <= self.max_bytes:
                break
            p.unlink(missing_ok=True)
            total -= size
            removed.append(p)
        return removed

    def clear(self) -> tuple[int, int]:
        entries = self.entries()
        for _, _, p in entries:
            p.unlink(missing_ok=True)
        for p in self.root.glob("*.part") if self.root.exists() else []:
            p.unlink(missing_ok=True)
        return len(entries), sum(s for _, s, _ in entries)
