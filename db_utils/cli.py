"""`movierec db upgrade|current`: apply or show the Alembic migrations on DATABASE_URL."""

from __future__ import annotations

import argparse
import sys

from db_utils.engine import alembic_config, upgrade_database
from movierec.base.settings import CommonSettings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="movierec db", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("upgrade", help="apply migrations (idempotent)")
    up.add_argument("revision", nargs="?", default="head")
    sub.add_parser("current", help="print the applied revision")
    args = parser.parse_args(argv[1:])
    settings = CommonSettings.from_env()
    if args.action == "upgrade":
        upgrade_database(settings.database_url, args.revision)
        print(f"database at revision {args.revision}: {_redact(settings.database_url)}")
        return 0
    from alembic import command

    command.current(alembic_config(settings.database_url))
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main(["db", *sys.argv[1:]]))
