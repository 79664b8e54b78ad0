"""Chunked contact imports with progress (issue 20), a kind of ``jobs`` job: the admin stores a
large CSV as the job's input file, and each step (one HTMX poll of the progress partial) imports
the next CHUNK_ROWS rows through ``contacts.import_contacts``. No background thread: the page drives
the import, and a reload resumes it.

The result adds up to exactly what a one-shot import gives: line numbers come from parsing the
whole file, and duplicates across chunks are caught because earlier chunks are already saved.
"""

from __future__ import annotations

from pathlib import Path

from . import contacts, jobs

CHUNK_ROWS = jobs.CHUNK
MAX_BYTES = 5_000_000
KIND = "contact_import"
JobNotFound = jobs.JobNotFound


def start(text: str, total: int, *, campaign_id: int, default_region: str, user_id: int) -> str:
    """Store a parsed-and-validated CSV (``total`` data rows) as a job; returns its token."""
    if len(text.encode()) > MAX_BYTES:
        raise ValueError(f"at most {MAX_BYTES // 1_000_000} MB")
    return jobs.start(KIND, total=total, user_id=user_id, perm="campaigns.add_contact", input_text=text,
                      fields={"campaign": campaign_id, "region": default_region, "imported": 0, "duplicates": 0,
                              "duplicate_rows": []})


def state(token: str, user_id: int) -> dict:
    """The job's progress; JobNotFound for an unknown token, another user's job or another kind."""
    st = jobs.state(token, user_id)
    if st.get("kind") != KIND:
        raise JobNotFound(token)
    return st


def step(token: str, user_id: int) -> dict:
    """Import the next chunk and return the new progress (see ``jobs.step``)."""
    state(token, user_id)
    return jobs.step(token, user_id)


@jobs.register(KIND)
def _import_chunk(st: dict, input_path: Path) -> None:
    rows = contacts.parse_csv(input_path.read_text(encoding="utf-8"))
    chunk = rows[st["done"]:st["done"] + CHUNK_ROWS]
    try:  # import_contacts saves its chunk in one transaction
        part = contacts.import_contacts(st["campaign"], chunk, default_region=st["region"])
    except contacts.CampaignNotFound:
        st.update(finished=True, failed="the campaign was deleted during the import")
        return
    st["done"] += len(chunk)
    st["imported"] += part["imported"]
    st["duplicates"] += part["duplicates"]
    st["duplicate_rows"] = (st["duplicate_rows"] + part["duplicate_rows"])[:100]
    st["errors"] = (st["errors"] + part["errors"])[:1000]
    st["error_count"] += part["error_count"]
    st["finished"] = st["done"] >= len(rows) or not chunk
