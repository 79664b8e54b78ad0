"""python manage.py kamailio_db: Kamailio's tables and the views it reads over TalkyAI's tables.

Kamailio at the edge must not keep a second user list or a hand-edited bridge list: it reads
``kam_subscriber`` (SIP accounts, HA1 only) and ``kam_dispatcher`` (live bridge nodes) straight
from this database. The SQL lives in ``deploy/kamailio/`` so operators can read it; this command
applies it idempotently after ``migrate``. PostgreSQL only: Debian's Kamailio has no SQLite driver,
and the single-process SQLite default needs none of this (the command refuses instead of half-working).
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

SQL_DIR = Path(settings.BASE_DIR) / "deploy" / "kamailio"
ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def kamailio_sql(node_timeout_s: float | None = None) -> str:
    """tables.sql + views.sql with the node timeout filled in (an integer number of seconds)."""
    timeout = int(round(settings.SIP_NODE_TIMEOUT_S if node_timeout_s is None else node_timeout_s))
    if timeout < 1:
        raise ValueError("the node timeout must be at least 1 s")
    views = (SQL_DIR / "views.sql").read_text().replace("{node_timeout_s}", str(timeout))
    return (SQL_DIR / "tables.sql").read_text() + "\n" + views


class Command(BaseCommand):
    help = "Create Kamailio's tables and the kam_* views over TalkyAI's tables (PostgreSQL only; idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--grant", metavar="ROLE", default="",
                            help="database role Kamailio connects as: gets SELECT on the views and "
                                 "read/write on its own tables")
        parser.add_argument("--print", action="store_true", help="print the SQL instead of running it")

    def handle(self, *args, **opts):
        sql = kamailio_sql()
        role = opts["grant"].strip()
        if role and not ROLE_RE.match(role):
            raise CommandError(f"--grant takes a plain role name, got {role[:40]!r}")
        if role:
            # Kamailio writes only its own tables; TalkyAI's tables are reachable only through the views
            sql += (f"\nGRANT SELECT ON kam_subscriber, kam_dispatcher, kam_dispatcher_state TO {role};"
                    f"\nGRANT SELECT, INSERT, UPDATE, DELETE ON version, location, location_attrs TO {role};"
                    f"\nGRANT USAGE ON SEQUENCE location_id_seq, location_attrs_id_seq TO {role};")
        if opts["print"]:
            self.stdout.write(sql)
            return
        if connection.vendor != "postgresql":
            raise CommandError(f"Kamailio needs PostgreSQL (DATABASE_URL); this database is {connection.vendor}. "
                               "The single-process default does not use Kamailio.")
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql)
        self.stdout.write("kamailio tables and views are in place"
                          + (f"; granted to {role}" if role else ""))
