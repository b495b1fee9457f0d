"""The router's admin token without configuration: made once by `movierec up`, read by every client.

LB_ADMIN_TOKEN wins when set. Otherwise `movierec up` creates a random token (secrets module) in
`<data_dir>/secrets/admin-token`, readable by its owner only (0600), and keeps it across runs; the
router, `movierec release`, the git hook, `eval online` and the admin client read it from there.
`movierec admin token` prints it for curl users. The token is never logged.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

TOKEN_FILE = Path("secrets") / "admin-token"


def token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def read_token(data_dir: Path) -> str:
    """The stored token, or "" when there is none."""
    try:
        return token_path(data_dir).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return ""


def ensure_token(data_dir: Path) -> Path:
    """Create the token file once (0600, in a 0700 directory); an existing token is kept."""
    path = token_path(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if not read_token(data_dir):  # an empty file left by a crash: fill it
            path.unlink()
            return ensure_token(data_dir)
        return path
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    return path


def main(argv: list[str]) -> int:
    """`movierec admin token`: print the admin token (argv[0] is the command name)."""
    from load_balancer.settings import RouterSettings

    parser = argparse.ArgumentParser(prog="movierec admin", description="the router's admin API credentials")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("token", help="print the admin token: curl -H \"Authorization: Bearer $(movierec admin token)\"")
    parser.parse_args(argv[1:])
    settings = RouterSettings.from_env()
    if not settings.admin_token:
        print(f"no admin token yet: `movierec up` creates {token_path(settings.common.data_dir)} "
              "(or set LB_ADMIN_TOKEN)", file=sys.stderr)
        return 1
    print(settings.admin_token)
    return 0
