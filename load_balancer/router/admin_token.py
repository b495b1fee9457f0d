"""The router's admin token without configuration: made once by `movierec up`, read by every client.

LB_ADMIN_TOKEN wins when set. Otherwise `movierec up` creates a random token (secrets module) in
`<data_dir>/secrets/admin-token`, readable by its owner only (0600), and keeps it across runs; the
router, `movierec release`, the git hook, `eval online` and the admin client read it from there.
`movierec admin token` (load_balancer.cli) prints it for curl users. The token is never logged.
"""

from __future__ import annotations

import os
import secrets
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


def resolved_token(configured: str, data_dir: Path) -> str:
    """LB_ADMIN_TOKEN when set (`configured`), else the stored token ("" when there is none)."""
    return configured or read_token(data_dir)


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

