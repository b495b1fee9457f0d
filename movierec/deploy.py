"""`movierec deploy init-env`: a `.env` for docker-compose.yml with generated secrets.

Starts from `.env.example` (every setting with its default), fills the secrets compose requires
(POSTGRES_PASSWORD, GRAFANA_ADMIN_PASSWORD, LB_ADMIN_TOKEN) with fresh random values and DOCKER_GID
with the group of the engine socket, and creates the Slack secret file `secrets/slack_webhook_url`
empty (mode 600; write the incoming-webhook URL into it to receive alerts). Secrets already present
in an existing `.env` are kept; nothing is ever printed.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

GENERATED = ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "LB_ADMIN_TOKEN")
SLACK_SECRET = Path("secrets") / "slack_webhook_url"
_LINE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def parse_env(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            values[match["name"]] = match["value"]
    return values


def fill_env(template: str, values: Mapping[str, str]) -> str:
    """`template` with the `NAME=` lines of `values` set (appended when the template lacks them)."""
    seen: set[str] = set()
    lines = []
    for line in template.splitlines():
        match = _LINE.match(line.strip())
        if match and match["name"] in values:
            seen.add(match["name"])
            line = f"{match['name']}={values[match['name']]}"
        lines.append(line)
    lines += [f"{name}={value}" for name, value in values.items() if name not in seen]
    return "\n".join(lines) + "\n"


def new_secrets(existing: Mapping[str, str]) -> dict[str, str]:
    """Keep the secrets `existing` already has; generate the others (URL-safe, no quoting needed)."""
    return {name: existing.get(name) or secrets.token_urlsafe(24) for name in GENERATED}


def socket_gid(socket: Path) -> str:
    try:
        return str(socket.stat().st_gid)
    except OSError:
        return ""


def init_env(root: Path, socket: Path, force: bool = False) -> list[Path]:
    """Write `<root>/.env` and `<root>/secrets/slack_webhook_url`; returns the files written."""
    env_path, example = root / ".env", root / ".env.example"
    existing = parse_env(env_path.read_text()) if env_path.exists() else {}
    template = example.read_text() if force or not env_path.exists() else env_path.read_text()
    values = new_secrets(existing)
    gid = existing.get("DOCKER_GID") or socket_gid(socket)
    if gid:
        values["DOCKER_GID"] = gid
    written = []
    old_umask = os.umask(0o077)
    try:
        env_path.write_text(fill_env(template, values))
        written.append(env_path)
        slack = root / SLACK_SECRET
        slack.parent.mkdir(exist_ok=True)
        if not slack.exists():
            slack.write_text("")
            written.append(slack)
    finally:
        os.umask(old_umask)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="movierec deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    init = sub.add_parser("init-env", help="write .env (generated secrets) and secrets/slack_webhook_url")
    init.add_argument("--dir", type=Path, default=Path("."), help="the checkout holding docker-compose.yml")
    init.add_argument("--docker-socket", type=Path,
                      default=Path(os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock")),
                      help="engine socket whose group the scheduler joins (DOCKER_GID)")
    init.add_argument("--force", action="store_true",
                      help="start again from .env.example (secrets already in .env are kept)")
    args = parser.parse_args(argv[1:])
    root = args.dir.resolve()
    if not (root / ".env.example").exists():
        parser.error(f"{root} has no .env.example (run it in the checkout)")
    for path in init_env(root, args.docker_socket, force=args.force):
        print(f"wrote {path}")
    return 0
