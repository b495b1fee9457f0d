"""`movierec hooks install`: a git `reference-transaction` hook that releases tagged nightlies.

Creating a tag `release-recommender-nightly-*` runs `movierec release nightly <tag>` in the
background (log: <data_dir>/releases/hook.log). The hook sees every ref update; it acts only in
the `committed` state, on tag creations (new object id not all zeros). The release runs from the
repository's top directory, so it reads the repository's `.env` like every `movierec` command (the
caller's environment wins); the data dir is the one `hooks install` saw. The admin token comes from
LB_ADMIN_TOKEN or from the token file `movierec up` keeps in that data dir.
"""

from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

TAG_PREFIX = "release-recommender-nightly-"
MARKER = "# installed by `movierec hooks install`"

HOOK_TEMPLATE = """#!/bin/sh
{marker}
# git passes "<old> <new> <ref>" lines on stdin; $1 is prepared|committed|aborted.
[ "$1" = "committed" ] || {{ cat >/dev/null; exit 0; }}
while read -r old new ref; do
  case "$ref" in
    refs/tags/{prefix}*)
      case "$new" in *[!0]*) ;; *) continue ;; esac
      tag=${{ref#refs/tags/}}
      mkdir -p {releases}  # also creates the data dir the job runs in
      ( unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_PREFIX GIT_EXEC_PATH
        cd {repo} || exit 1
        MOVIEREC_DATA_DIR={data_dir} RELEASE_REPO_DIR={repo} \\
        nohup {python} -m movierec.cli release nightly "$tag" >> {log} 2>&1 ) </dev/null >/dev/null 2>&1 &
      ;;
  esac
done
exit 0
"""


def hook_script(repo: Path, data_dir: Path, python: str = sys.executable) -> str:
    """The hook's text, with absolute paths baked in (hooks run with git's environment)."""
    releases = data_dir / "releases"
    return HOOK_TEMPLATE.format(
        marker=MARKER, prefix=TAG_PREFIX, releases=shlex.quote(str(releases)), repo=shlex.quote(str(repo)),
        data_dir=shlex.quote(str(data_dir)), python=shlex.quote(python),
        log=shlex.quote(str(releases / "hook.log")),
    )


def hooks_dir(repo: Path) -> Path:
    from load_balancer.release.pipeline import git

    path = Path(git(repo, "rev-parse", "--git-path", "hooks"))
    return path if path.is_absolute() else repo / path


def install_hook(repo: Path, data_dir: Path, force: bool = False) -> Path:
    """Write `.git/hooks/reference-transaction` (refusing to overwrite a foreign hook unless `force`)."""
    target = hooks_dir(repo) / "reference-transaction"
    if target.exists() and MARKER not in target.read_text(errors="replace") and not force:
        raise FileExistsError(f"{target} exists and was not installed by movierec (use --force)")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(hook_script(repo, data_dir))
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return target
