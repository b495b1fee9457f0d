"""The three stream lines of shared/design/stream-format.md, formatted exactly (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


def format_time(when: datetime, fractional: bool = False) -> str:
    """ISO 8601 without zone; whole seconds for watches and ratings, microseconds for requests."""
    return when.isoformat(timespec="microseconds" if fractional else "seconds")


def watch_line(when: datetime, user_id: int, movie_id: str, minute: int) -> str:
    """`<time>,<userid>,GET /data/m/<movieid>/<minute>.mpg`"""
    return f"{format_time(when)},{user_id},GET /data/m/{movie_id}/{minute}.mpg"


def rating_line(when: datetime, user_id: int, movie_id: str, rating: int) -> str:
    """`<time>,<userid>,GET /rate/<movieid>=<rating>`"""
    return f"{format_time(when)},{user_id},GET /rate/{movie_id}={rating}"


def server_token(model_version: str | None, host: str, port: int) -> str:
    """`<model_version>@<host>:<port>`, or `<host>:<port>` when the version is unknown."""
    address = f"{host}:{port}"
    return f"{model_version}@{address}" if model_version else address


def recommendation_line(
    when: datetime, user_id: int, server: str, status: int, results: Sequence[str] | str, response_ms: int
) -> str:
    """`<time>,<userid>,recommendation request <server>, status <code>, result: <recs>, <n> ms`

    `results` is the list of movie ids, or for a failed request a short error text (the course
    feed wrote e.g. `status 0, result: java.net.ConnectException...`).
    """
    recs = results if isinstance(results, str) else ", ".join(results)
    return (
        f"{format_time(when, fractional=True)},{user_id},recommendation request {server}, "
        f"status {status}, result: {recs}, {int(response_ms)} ms"
    )
