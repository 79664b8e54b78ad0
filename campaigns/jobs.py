"""Long operations with progress (issue 20): one job store for the admin's chunked work — the large
contact import (``import_jobs``) and the bulk actions on contacts (``bulk_actions``).

A job is a small JSON state file under MEDIA_ROOT/jobs/ (plus an optional input file, e.g. the
uploaded CSV), so every web process sees the same job without a table or a worker process. The
progress page drives it: each HTMX poll runs ``step``, which does the next chunk through the job
kind's function. A kind does one chunk inside one transaction, so a failure rolls back only that
chunk; the job then stops with the error, the rows of earlier chunks stay done and the rest stay as
they were (the summary says which). A lock file keeps two polls from running the same chunk twice;
a reload resumes where the state says.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

CHUNK = 500
STALE_LOCK_S = 120.0
KEEP_S = 24 * 3600.0  # finished or abandoned jobs are removed a day later
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

# kind -> chunk function: (state, input file path) -> None; it advances state["done"] and its counts
Chunk = Callable[[dict, Path], None]
KINDS: dict[str, Chunk] = {}


class JobNotFound(LookupError):
    pass


def register(kind: str) -> Callable[[Chunk], Chunk]:
    """Declare a job kind; the decorated function runs one chunk (atomically) and updates the state."""
    def add(fn: Chunk) -> Chunk:
        KINDS[kind] = fn
        return fn
    return add


def _dir() -> Path:
    d = Path(settings.MEDIA_ROOT) / "jobs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def paths(token: str) -> tuple[Path, Path, Path]:
    """(input file, state file, lock file) of a job; JobNotFound for anything but a token, so a
    token from a URL can never name another path."""
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise JobNotFound(token)
    d = _dir()
    return d / f"{token}.input", d / f"{token}.json", d / f"{token}.lock"


def _write_state(path: Path, st: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(st))
    os.replace(tmp, path)


def _sweep(now: float) -> None:
    for f in _dir().iterdir():
        try:
            if now - f.stat().st_mtime > KEEP_S:
                f.unlink()
        except OSError:
            pass


def start(kind: str, *, total: int, user_id: int, perm: str, fields: dict, input_text: str | None = None,
          confirm: bool = False) -> str:
    """Store a new job and return its token. ``perm`` is the permission every step re-checks;
    ``confirm`` makes the page ask before the first chunk (destructive kinds)."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    now = time.time()
    _sweep(now)
    token = secrets.token_urlsafe(18)
    input_path, state_path, _ = paths(token)
    if input_text is not None:
        input_path.write_text(input_text, encoding="utf-8")
    _write_state(state_path, {"kind": kind, "user": user_id, "perm": perm, "total": total, "done": 0,
                              "errors": [], "error_count": 0, "finished": False, "failed": "",
                              "needs_confirm": confirm, "confirmed": not confirm, "cancelled": False,
                              "created": now, **fields})
    return token


def state(token: str, user_id: int) -> dict:
    """The job's progress; JobNotFound for an unknown token or another user's job."""
    _, state_path, _ = paths(token)
    try:
        st = json.loads(state_path.read_text())
    except (OSError, ValueError):
        raise JobNotFound(token) from None
    if st.get("user") != user_id:
        raise JobNotFound(token)
    return st


def cancel(token: str, user_id: int) -> dict:
    """Drop a job that was never confirmed (the operator said no): nothing was changed."""
    st = state(token, user_id)
    if not st["confirmed"] and not st["finished"]:
        input_path, state_path, _ = paths(token)
        st.update(finished=True, cancelled=True)
        _write_state(state_path, st)
        input_path.unlink(missing_ok=True)
    return st


def step(token: str, user_id: int, *, confirm: bool = False) -> dict:
    """Run the next chunk and return the new progress. If another request holds the job's lock the
    progress is returned unchanged (the next poll continues). A job waiting for confirmation runs
    only when ``confirm`` is given."""
    st = state(token, user_id)
    if st["finished"] or not (st["confirmed"] or confirm):
        return st
    input_path, state_path, lock_path = paths(token)
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
        st["confirmed"] = True
        done_before = st["done"]
        try:
            KINDS[st["kind"]](st, input_path)
        except Exception as exc:  # noqa: BLE001 - the chunk rolled back; stop and say why
            log.exception("job %s (%s) failed at %d of %d", token, st["kind"], done_before, st["total"])
            st = state(token, user_id)  # the counts as they were before this chunk
            st.update(confirmed=True, finished=True,
                      failed=f"stopped after {done_before} of {st['total']}: {type(exc).__name__}: {exc}")
        else:
            st["finished"] = st["finished"] or st["done"] >= st["total"] or st["done"] == done_before
        _write_state(state_path, st)
        if st["finished"]:
            input_path.unlink(missing_ok=True)
        return st
    finally:
        lock_path.unlink(missing_ok=True)
