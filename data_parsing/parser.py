"""Stream lines -> typed events (pure; no I/O). See shared/design/stream-format.md.

    <time>,<userid>,GET /data/m/<movieid>/<minute>.mpg
    <time>,<userid>,GET /rate/<movieid>=<rating>
    <time>,<userid>,recommendation request <server>, status <code>, result: <recs>, <n> ms

`parse_line(raw: bytes)` returns a WatchEvent, RatingEvent or RecommendationEvent, or raises
`MalformedLine` with a short machine reason code (`truncated`, `bad_time`, ...). It is the hot path
of the consumer: it works on the Kafka value bytes with `split`/`partition`/`translate` (C calls,
no regular expressions) and decodes only the fields that become strings.
`parse_line_fast` is the same parser for the consumer's inner loop: a watch line (93% of the
stream) comes back as a plain tuple whose time is validated but left as its ISO text, which
sorts chronologically, so a batch converts only the first/last time of each (user, movie).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from db_utils import ids

MAX_LINE_BYTES = 8192  # 20 results of 300-byte slugs plus the fixed text stay below this
MAX_SLUG_BYTES = ids.MAX_MOVIE_ID_BYTES
MAX_RESULTS = 20
MAX_USER_ID = ids.MAX_USER_ID
MAX_MINUTE_DIGITS = 6  # up to 999,999: generous (the longest film runs ~51,000 minutes), fits INTEGER
MAX_LATENCY_MS = 2**31 - 1  # INTEGER
MAX_SERVER_BYTES = 255  # recommendations.served_by
MAX_MODEL_VERSION_BYTES = 128  # recommendations.model_version
MAX_USER_DIGITS = ids.MAX_USER_ID_DIGITS
MAX_TIME_CACHE = 100_000

_DIGITS = b"0123456789"
_SERVER_ASCII_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+@:[]"
_TIME_SKELETON = b"--T::"  # what remains of YYYY-MM-DDTHH:MM:SS once the digits are deleted

_WATCH_PREFIX = b"GET /data/m/"
_RATE_PREFIX = b"GET /rate/"
_RECO_PREFIX = b"recommendation request "
_STATUS_SEP = b", status "
_RESULT_SEP = b", result: "


# Every reason code a MalformedLine (and so a dead letter) can carry.
REASONS = frozenset({"too_long", "empty", "not_utf8", "truncated", "unknown_format", "bad_time", "bad_user",
                     "bad_movie_id", "bad_minute", "bad_rating", "rating_out_of_range", "bad_server", "bad_status",
                     "bad_results", "bad_latency"})


class MalformedLine(ValueError):
    """A stream line that is not one of the three formats; `reason` is a short machine code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class WatchEvent:
    time: datetime
    user_id: int
    movie_id: str
    minute: int


@dataclass(frozen=True, slots=True)
class RatingEvent:
    time: datetime
    user_id: int
    movie_id: str
    rating: int


@dataclass(frozen=True, slots=True)
class RecommendationEvent:
    time: datetime
    user_id: int
    server: str
    model_version: str | None
    status: int
    results: tuple[str, ...]
    latency_ms: int
    raw: str


Event = WatchEvent | RatingEvent | RecommendationEvent

# Consecutive lines share their second far more often than not (many events per second):
# remembering validated seconds skips the checks and the datetime construction.
_seconds_cache: dict[bytes, datetime] = {}
# Validated movie ids; a catalogue has tens of thousands, the cache is bounded anyway.
_slug_cache: dict[bytes, str] = {}
MAX_SLUG_CACHE = 200_000


def check_time(raw: bytes) -> datetime:
    """Validate `YYYY-MM-DDTHH:MM:SS[.f-ffffff]` (no zone); returns the whole-second part."""
    size = len(raw)
    if size == 19:
        head = raw
    elif 21 <= size <= 26 and raw[19] == 46 and raw[20:].isdigit():  # 46 = "."
        head = raw[:19]
    else:
        raise MalformedLine("bad_time", _show(raw))
    seconds = _seconds_cache.get(head)
    if seconds is not None:
        return seconds
    if head.translate(None, _DIGITS) != _TIME_SKELETON or head[10] != 84:  # 84 = "T"
        raise MalformedLine("bad_time", _show(raw))
    try:
        seconds = datetime.fromisoformat(head.decode("ascii"))
    except ValueError:
        raise MalformedLine("bad_time", _show(raw)) from None
    if len(_seconds_cache) >= MAX_TIME_CACHE:
        _seconds_cache.clear()
    _seconds_cache[head] = seconds
    return seconds


def parse_time(raw: bytes) -> datetime:
    """`YYYY-MM-DDTHH:MM:SS` with an optional `.f` to `.ffffff`, no zone -> naive datetime."""
    seconds = check_time(raw)
    if len(raw) == 19:
        return seconds
    return seconds.replace(microsecond=int(raw[20:].ljust(6, b"0")))


def parse_user(raw: bytes) -> int:
    """A user id as db_utils.ids defines it (a positive integer that fits a BIGINT)."""
    try:
        return ids.parse_user_id(raw)
    except ids.InvalidUserId:
        raise MalformedLine("bad_user", _show(raw)) from None


def parse_slug(raw: bytes) -> str:
    """A movie id as db_utils.ids defines it (a catalogue slug such as `the+dark+knight+2008`)."""
    slug = _slug_cache.get(raw)
    if slug is not None:
        return slug
    slug = _check_slug(raw)
    if len(_slug_cache) >= MAX_SLUG_CACHE:
        _slug_cache.clear()
    _slug_cache[raw] = slug
    return slug


def _check_slug(raw: bytes) -> str:
    try:
        return ids.parse_movie_id(raw)
    except ids.InvalidMovieId:
        raise MalformedLine("bad_movie_id", _show(raw)) from None


def parse_line(raw: bytes) -> Event:
    """One stream line (the Kafka value) -> its event; raises MalformedLine with a reason code."""
    parsed = parse_line_fast(raw)
    if type(parsed) is tuple:
        time_raw, user_id, movie_id, minute = parsed
        return WatchEvent(parse_time(time_raw), user_id, movie_id, minute)
    return parsed  # type: ignore[return-value]


WatchFields = tuple[bytes, int, str, int]  # (validated ISO time text, user id, movie id, minute)


def parse_line_fast(raw: bytes) -> WatchFields | RatingEvent | RecommendationEvent:
    """parse_line for the hot loop: a watch line comes back as WatchFields, not a WatchEvent."""
    if len(raw) > MAX_LINE_BYTES:
        raise MalformedLine("too_long", f"{len(raw)} bytes")
    if raw.endswith(b"\n"):
        raw = raw.rstrip(b"\r\n")
    if not raw or raw.isspace():
        raise MalformedLine("empty")
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedLine("not_utf8") from None
    parts = raw.split(b",", 2)
    if len(parts) < 3:
        check_time(parts[0])  # a line that does not even start with a time is not a stream line
        raise MalformedLine("truncated", "fewer than 3 comma-separated fields")
    time_raw, user_raw, request = parts
    if request.startswith(_WATCH_PREFIX):
        return _parse_watch(time_raw, user_raw, request)
    if request.startswith(_RATE_PREFIX):
        return _parse_rating(time_raw, user_raw, request)
    if request.startswith(_RECO_PREFIX):
        return _parse_recommendation(time_raw, user_raw, request, raw)
    if _WATCH_PREFIX.startswith(request) or _RATE_PREFIX.startswith(request) or _RECO_PREFIX.startswith(request):
        raise MalformedLine("truncated", _show(request))
    raise MalformedLine("unknown_format", _show(request))


def _parse_watch(time_raw: bytes, user_raw: bytes, request: bytes) -> WatchFields:
    # GET /data/m/<movieid>/<minute>.mpg -- the hot path: common cases are inlined, the full
    # checks (and their error reasons) live in check_time / parse_user / parse_slug.
    if not request.endswith(b".mpg"):
        raise MalformedLine("truncated", _show(request))
    movie_raw, slash, minute_raw = request[12:-4].rpartition(b"/")
    if not slash:
        raise MalformedLine("truncated", _show(request))
    if not minute_raw.isdigit() or len(minute_raw) > MAX_MINUTE_DIGITS:
        raise MalformedLine("bad_minute", _show(minute_raw))
    if len(time_raw) != 19 or time_raw not in _seconds_cache:
        check_time(time_raw)
    if user_raw.isdigit() and len(user_raw) < MAX_USER_DIGITS and user_raw[0] != 48:  # no leading "0"
        user_id = int(user_raw)  # positive, below 10**18
    else:
        user_id = parse_user(user_raw)
    movie_id = _slug_cache.get(movie_raw) or parse_slug(movie_raw)
    return (time_raw, user_id, movie_id, int(minute_raw))


def _parse_rating(time_raw: bytes, user_raw: bytes, request: bytes) -> RatingEvent:
    # GET /rate/<movieid>=<rating>
    movie_raw, equals, rating_raw = request[10:].rpartition(b"=")
    if not equals:
        raise MalformedLine("truncated", _show(request))
    if not rating_raw:
        raise MalformedLine("truncated", _show(request))
    if not rating_raw.isdigit():
        if rating_raw[:1] == b"-" and rating_raw[1:].isdigit():
            raise MalformedLine("rating_out_of_range", _show(rating_raw))
        raise MalformedLine("bad_rating", _show(rating_raw))
    if len(rating_raw) > 1 or not 49 <= rating_raw[0] <= 53:  # "1".."5"
        raise MalformedLine("rating_out_of_range", _show(rating_raw))
    return RatingEvent(parse_time(time_raw), parse_user(user_raw), parse_slug(movie_raw), rating_raw[0] - 48)


def parse_server(raw: bytes) -> tuple[str, str | None]:
    """`<model_version>@<host>:<port>` or `<host>:<port>` -> (whole token, model version or None)."""
    if not raw or len(raw) > MAX_SERVER_BYTES or raw.translate(None, _SERVER_ASCII_BYTES):
        raise MalformedLine("bad_server", _show(raw))
    version_raw, at, address = raw.rpartition(b"@")
    host, colon, port = address.rpartition(b":")
    if not colon or not host or not port.isdigit() or len(port) > 5 or not 0 < int(port) <= 65535:
        raise MalformedLine("bad_server", _show(raw))
    if at and (not version_raw or len(version_raw) > MAX_MODEL_VERSION_BYTES or b"@" in version_raw):
        raise MalformedLine("bad_server", _show(raw))
    return raw.decode("ascii"), (version_raw.decode("ascii") if at else None)


def _parse_results(raw: bytes, status: int) -> tuple[str, ...]:
    if not raw:
        return ()
    items = raw.split(b", ")
    try:
        if len(items) > MAX_RESULTS:
            raise MalformedLine("bad_results", f"{len(items)} results (at most {MAX_RESULTS})")
        return tuple(parse_slug(item) for item in items)
    except MalformedLine:
        # A failed request's "result" is an error message, not a list (the course feed wrote
        # e.g. `status 0, result: java.net.ConnectException: ...`): keep the request, no results.
        if status != 200:
            return ()
        raise MalformedLine("bad_results", _show(raw)) from None


def _parse_recommendation(time_raw: bytes, user_raw: bytes, request: bytes, raw: bytes) -> RecommendationEvent:
    # recommendation request <server>, status <code>, result: <recs>, <n> ms
    server_raw, sep, rest = request[23:].partition(_STATUS_SEP)
    if not sep:
        raise MalformedLine("truncated", "no status")
    status_raw, sep, rest = rest.partition(_RESULT_SEP)
    if not sep:
        raise MalformedLine("truncated", "no result")
    if not status_raw.isdigit() or len(status_raw) > 3:
        raise MalformedLine("bad_status", _show(status_raw))
    status = int(status_raw)
    if status > 599:
        raise MalformedLine("bad_status", _show(status_raw))
    # The latency is the last ", "-separated field; ", <n> ms" also ends an empty result list.
    if rest.startswith(b", "):
        results_raw, latency_raw = b"", rest[2:]
    else:
        results_raw, sep, latency_raw = rest.rpartition(b", ")
        if not sep:
            raise MalformedLine("truncated", "no latency")
    if not latency_raw.endswith(b" ms"):
        raise MalformedLine("bad_latency", _show(latency_raw))
    latency_digits = latency_raw[:-3]
    if not latency_digits.isdigit() or len(latency_digits) > 10 or int(latency_digits) > MAX_LATENCY_MS:
        raise MalformedLine("bad_latency", _show(latency_raw))
    server, model_version = parse_server(server_raw)
    return RecommendationEvent(
        time=parse_time(time_raw),
        user_id=parse_user(user_raw),
        server=server,
        model_version=model_version,
        status=status,
        results=_parse_results(results_raw, status),
        latency_ms=int(latency_digits),
        raw=raw.decode("utf-8"),
    )


def _show(raw: bytes, limit: int = 60) -> str:
    """A short printable excerpt of a field for the dead letter's detail."""
    text = raw[:limit].decode("utf-8", errors="replace")
    if not text.isprintable():  # control characters (NUL above all) cannot go into a text column
        text = text.encode("unicode_escape").decode("ascii")
    return text + "..." if len(raw) > limit else text
