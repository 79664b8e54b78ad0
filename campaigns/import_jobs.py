"""Chunked contact imports with progress (issue 20): the admin stores a large CSV under
MEDIA_ROOT/imports/ with a small JSON state file next to it, and each step (one HTMX poll of the
progress partial) imports the next CHUNK_ROWS rows through ``contacts.import_contacts``. No
background thread: the page drives the import, and a reload resumes it.

The result adds up to exactly what a one-shot import gives: line numbers come from parsing the
whole file, and duplicates across chunks are caught because earlier chunks are already saved.
Files are the job store so every web process sees the same job; a lock file keeps two polls
from importing the same chunk twice.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path

from django.conf import settings

from . import contacts

CHUNK_ROWS = 500
MAX_BYTES = 5_000_000
STALE_LOCK_S = 120.0
KEEP_S = 24 * 3600.0  # finished or abandoned jobs are removed a day later
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class JobNotFound(LookupError):
    pass


def _dir() -> Path:
    d = Path(settings.MEDIA_ROOT) / "imports"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _paths(token: str) -> tuple[Path, Path, Path]:
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise JobNotFound(token)
    d = _dir()
    return d / f"{token}.csv", d / f"{token}.json", d / f"{token}.lock"


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _sweep(now: float) -> None:
    for f in _dir().iterdir():
        try:
            if now - f.stat().st_mtime > KEEP_S:
                f.unlink()
        except OSError:
            pass


def start(text: str, total: int, *, campaign_id: int, default_region: str, user_id: int) -> str:
    """Store a parsed-and-validated CSV (``total`` data rows) as a job; returns its token."""
    if len(text.encode()) > MAX_BYTES:
        raise ValueError(f"at most {MAX_BYTES // 1_000_000} MB")
    now = time.time()
    _sweep(now)
    token = secrets.token_urlsafe(18)
    csv_path, state_path, _ = _paths(token)
    csv_path.write_text(text, encoding="utf-8")
    _write_state(state_path, {"campaign": campaign_id, "region": default_region, "user": user_id, "total": total,
                              "done": 0, "imported": 0, "duplicates": 0, "duplicate_rows": [], "errors": [],
                              "error_count": 0, "finished": False, "created": now})
    return token


def state(token: str, user_id: int) -> dict:
    """The job's progress; JobNotFound for an unknown token or another user's job."""
    _, state_path, _ = _paths(token)
    try:
        st = json.loads(state_path.read_text())
    except (OSError, ValueError):
        raise JobNotFound(token) from None
    if st.get("user") != user_id:
        raise JobNotFound(token)
    return st


def step(token: str, user_id: int) -> dict:
    """Import the next chunk and return the new progress. If another request holds the job's lock
    the progress is returned unchanged (the next poll continues)."""
    st = state(token, user_id)
    if st["finished"]:
        return st
    csv_path, state_path, lock_path = _paths(token)
    try:
        fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            if time.time() - lock_path.stat().st_mtime > STALE_LOCK_S:  # a step that died
                lock_path.unlink()
        except OSError:
            pass
        return st
    try:
        os.close(fd)
        st = state(token, user_id)  # re-read under the lock
        if st["finished"]:
            return st
        rows = contacts.parse_csv(csv_path.read_text(encoding="utf-8"))
        chunk = rows[st["done"]:st["done"] + CHUNK_ROWS]
        try:
            part = contacts.import_contacts(st["campaign"], chunk, default_region=st["region"])
        except contacts.CampaignNotFound:
            st.update(finished=True, failed="the campaign was deleted during the import")
            _write_state(state_path, st)
            csv_path.unlink(missing_ok=True)
            return st
        st["done"] += len(chunk)
        st["imported"] += part["imported"]
        st["duplicates"] += part["duplicates"]
        st["duplicate_rows"] = (st["duplicate_rows"] + part["duplicate_rows"])[:100]
        st["errors"] = (st["errors"] + part["errors"])[:1000]
        st["error_count"] += part["error_count"]
        st["finished"] = st["done"] >= len(rows) or not chunk
        _write_state(state_path, st)
        if st["finished"]:
            csv_path.unlink(missing_ok=True)
        return st
    finally:
        lock_path.unlink(missing_ok=True)
