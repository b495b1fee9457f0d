"""A small recommendation service for the release tests, committed into a temporary clone of this
repository as its `inference/cli.py`, so `python -m movierec.cli inference|eval offline` runs it
through the real command dispatch and the real gunicorn serving (movierec.base.serving).

Each test commit sets BEHAVIOUR: `good` recommends from the user's taste, `bad` recommends films
outside it, `flaky` answers 500 to even users and hangs for odd ones (its /health stays green).
Taste is a pure function of the user id, shared with the test's client loop.
"""

from __future__ import annotations

import argparse
import os
import time

BEHAVIOUR = "good"
FILMS = 200


def taste(user_id: int) -> list[str]:
    """The films this user would watch if recommended."""
    return [f"film-{(user_id * 7 + k) % (FILMS - 20)}" for k in range(10)]


def recommend(user_id: int, behaviour: str = BEHAVIOUR) -> list[str]:
    outside = [f"film-{k}" for k in range(FILMS - 20, FILMS)]  # nobody's taste
    if behaviour == "good":
        return taste(user_id)[:5] + outside[:15]
    return outside


def offline_hit_rate(behaviour: str = BEHAVIOUR, users: int = 100) -> float:
    hits = sum(bool(set(recommend(u, behaviour)) & set(taste(u))) for u in range(1, users + 1))
    return hits / users


def create_app(version: str, behaviour: str = BEHAVIOUR):  # type: ignore[no-untyped-def]
    from flask import Flask, Response, jsonify

    app = Flask("tiny-inference")

    @app.get("/recommend/<int:user_id>")
    def answer(user_id: int) -> Response:
        if behaviour == "flaky":
            if user_id % 2 == 0:
                return Response("internal error", status=500, headers={"X-Model-Version": version})
            time.sleep(5)
        return Response(",".join(recommend(user_id, behaviour)), headers={"X-Model-Version": version},
                        content_type="text/plain; charset=utf-8")

    @app.get("/health")
    def health():  # type: ignore[no-untyped-def]
        return jsonify(status="ok", version=version), 200, {"X-Model-Version": version}

    return app


def main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    if command == "inference":
        parser = argparse.ArgumentParser()
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--strategy", default="")
        parser.add_argument("--workers", type=int, default=1)
        args = parser.parse_args(rest)
        from movierec.base.serving import serve

        version = os.environ.get("MODEL_VERSION", f"tiny-{BEHAVIOUR}")
        serve(lambda: create_app(version), bind=f"{args.host}:{args.port}", workers=args.workers, threads=8)
        return 0
    if command == "eval" and rest[:1] == ["offline"]:
        parser = argparse.ArgumentParser()
        parser.add_argument("--gate", required=True)
        parser.add_argument("--min-hr", type=float, default=0.0)
        args = parser.parse_args(rest[1:])
        hit_rate = offline_hit_rate()
        print(f"{args.gate} HR {hit_rate:.3f} (minimum {args.min_hr})")
        return 0 if hit_rate >= args.min_hr else 1
    return 2
