"""The stream line parser: the three formats, every rejection reason, and property tests."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_parsing.parser import (
    MAX_LINE_BYTES,
    MalformedLine,
    RatingEvent,
    RecommendationEvent,
    WatchEvent,
    parse_line,
    parse_line_fast,
    parse_time,
)


def test_real_watch_line() -> None:
    event = parse_line(b"2023-10-25T00:56:34,185706,GET /data/m/the+dark+knight+2008/35.mpg")
    assert event == WatchEvent(datetime(2023, 10, 25, 0, 56, 34), 185706, "the+dark+knight+2008", 35)


def test_real_rating_line() -> None:
    event = parse_line(b"2023-10-25T01:02:11,185706,GET /rate/the+dark+knight+2008=4")
    assert event == RatingEvent(datetime(2023, 10, 25, 1, 2, 11), 185706, "the+dark+knight+2008", 4)


def test_real_recommendation_line_with_plain_server() -> None:
    raw = (b"2023-03-20T08:12:38.176557,128017,recommendation request 17645-team14.isri.cmu.edu:8082, "
           b"status 200, result: the+green+mile+1999, the+sound+of+music+1965, 131 ms")
    event = parse_line(raw)
    assert event == RecommendationEvent(
        time=datetime(2023, 3, 20, 8, 12, 38, 176557), user_id=128017, server="17645-team14.isri.cmu.edu:8082",
        model_version=None, status=200, results=("the+green+mile+1999", "the+sound+of+music+1965"),
        latency_ms=131, raw=raw.decode(),
    )


def test_recommendation_server_token_carries_the_model_version() -> None:
    event = parse_line(b"2024-01-01T00:00:00,7,recommendation request blend-v1@127.0.0.1:8082, status 200, "
                       b"result: heat+1995, 12 ms")
    assert isinstance(event, RecommendationEvent)
    assert (event.server, event.model_version, event.results) == ("blend-v1@127.0.0.1:8082", "blend-v1", ("heat+1995",))


def test_failed_request_keeps_the_request_without_results() -> None:
    event = parse_line(b"2024-01-01T00:00:00,7,recommendation request host:8082, status 0, "
                       b"result: java.net.ConnectException: Connection refused (Connection refused), 0 ms")
    assert isinstance(event, RecommendationEvent)
    assert (event.status, event.results, event.latency_ms) == (0, (), 0)
    empty = parse_line(b"2024-01-01T00:00:00,7,recommendation request host:8082, status 503, result: , 800 ms")
    assert isinstance(empty, RecommendationEvent) and empty.results == () and empty.latency_ms == 800


def test_fractional_seconds_of_any_width_up_to_micro() -> None:
    assert parse_time(b"2023-10-25T00:56:34.5") == datetime(2023, 10, 25, 0, 56, 34, 500000)
    assert parse_time(b"2023-10-25T00:56:34.000123") == datetime(2023, 10, 25, 0, 56, 34, 123)


def test_fast_path_returns_watch_fields_with_time_text() -> None:
    fields = parse_line_fast(b"2023-10-25T00:56:34.25,9,GET /data/m/heat+1995/0.mpg")
    assert fields == (b"2023-10-25T00:56:34.25", 9, "heat+1995", 0)


def test_trailing_newline_and_unicode_slug_are_accepted() -> None:
    event = parse_line("2023-10-25T00:56:34,9,GET /data/m/amélie+2001/3.mpg\r\n".encode())
    assert event == WatchEvent(datetime(2023, 10, 25, 0, 56, 34), 9, "amélie+2001", 3)


T = "2023-10-25T00:56:34"
REJECTIONS = [
    (b"", "empty"),
    (b"   ", "empty"),
    (b"\n", "empty"),
    (b"\xff\xfe\x00garbage", "not_utf8"),
    (b"2023-10-25T00:56:34,185706", "truncated"),
    (b"2023-10-25T00:56:34,185706,GET /da", "truncated"),
    (b"2023-10-25T00:56:34,185706,GET /data/m/the+dark+kni", "truncated"),
    (b"2023-10-25T00:56:34,185706,GET /data/m/35.mpg", "truncated"),
    (b"2023-10-25T00:56:34,185706,GET /rate/heat+1995", "truncated"),
    (b"2023-10-25T00:56:34,185706,GET /rate/heat+1995=", "truncated"),
    (b"2023-10-25T00:56:34,1,recommendation request h:1", "truncated"),
    (b"2023-10-25T00:56:34,1,recommendation request h:1, status 200", "truncated"),
    (b"2023-10-25T00:56:34,1,recommendation request h:1, status 200, result: heat+1995", "truncated"),
    (b"2023-10-25T00:56:34,185706,POST /login", "unknown_format"),
    (b"hello world, this is, not a line", "unknown_format"),
    (b"2023-10-25 00:56:34,1,GET /data/m/heat+1995/1.mpg", "bad_time"),
    (b"2023-10-25T00:56:34Z,1,GET /data/m/heat+1995/1.mpg", "bad_time"),
    (b"2023-10-25T00:56:34+01:00,1,GET /data/m/heat+1995/1.mpg", "bad_time"),
    (b"2023-13-25T00:56:34,1,GET /data/m/heat+1995/1.mpg", "bad_time"),
    (b"2023-02-30T00:56:34,1,GET /data/m/heat+1995/1.mpg", "bad_time"),
    (b"2023-10-25T00:56:34.1234567,1,GET /data/m/heat+1995/1.mpg", "bad_time"),
    (b"2023-10-25T00:56:34.,1,GET /data/m/heat+1995/1.mpg", "bad_time"),
    (b"yesterday,1,GET /data/m/heat+1995/1.mpg", "bad_time"),
    (f"{T},abc,GET /data/m/heat+1995/1.mpg".encode(), "bad_user"),
    (f"{T},0,GET /data/m/heat+1995/1.mpg".encode(), "bad_user"),
    (f"{T},-5,GET /data/m/heat+1995/1.mpg".encode(), "bad_user"),
    (f"{T},99999999999999999999,GET /data/m/heat+1995/1.mpg".encode(), "bad_user"),
    (f"{T}, 5,GET /data/m/heat+1995/1.mpg".encode(), "bad_user"),
    (f"{T},,GET /data/m/heat+1995/1.mpg".encode(), "bad_user"),
    (f"{T},5,GET /data/m/Heat+1995/1.mpg".encode(), "bad_movie_id"),
    (f"{T},5,GET /data/m/heat 1995/1.mpg".encode(), "bad_movie_id"),
    (f"{T},5,GET /data/m//1.mpg".encode(), "bad_movie_id"),
    (f"{T},5,GET /data/m/a/b/1.mpg".encode(), "bad_movie_id"),
    (f"{T},5,GET /data/m/{'x' * 301}/1.mpg".encode(), "bad_movie_id"),
    (f"{T},5,GET /data/m/heat+1995/abc.mpg".encode(), "bad_minute"),
    (f"{T},5,GET /data/m/heat+1995/-1.mpg".encode(), "bad_minute"),
    (f"{T},5,GET /data/m/heat+1995/.mpg".encode(), "bad_minute"),
    (f"{T},5,GET /data/m/heat+1995/99999999.mpg".encode(), "bad_minute"),
    (f"{T},5,GET /rate/heat+1995=0".encode(), "rating_out_of_range"),
    (f"{T},5,GET /rate/heat+1995=6".encode(), "rating_out_of_range"),
    (f"{T},5,GET /rate/heat+1995=10".encode(), "rating_out_of_range"),
    (f"{T},5,GET /rate/heat+1995=-1".encode(), "rating_out_of_range"),
    (f"{T},5,GET /rate/heat+1995=abc".encode(), "bad_rating"),
    (f"{T},5,GET /rate/heat+1995=4.5".encode(), "bad_rating"),
    (f"{T},5,GET /rate/=4".encode(), "bad_movie_id"),
    (f"{T},5,recommendation request h:1, status ok, result: heat+1995, 3 ms".encode(), "bad_status"),
    (f"{T},5,recommendation request h:1, status 9999, result: heat+1995, 3 ms".encode(), "bad_status"),
    (f"{T},5,recommendation request h:1, status 200, result: heat+1995, 3 sec".encode(), "bad_latency"),
    (f"{T},5,recommendation request h:1, status 200, result: heat+1995, -3 ms".encode(), "bad_latency"),
    (f"{T},5,recommendation request h 1, status 200, result: heat+1995, 3 ms".encode(), "bad_server"),
    (f"{T},5,recommendation request host, status 200, result: heat+1995, 3 ms".encode(), "bad_server"),
    (f"{T},5,recommendation request @host:80, status 200, result: heat+1995, 3 ms".encode(), "bad_server"),
    (f"{T},5,recommendation request host:99999, status 200, result: heat+1995, 3 ms".encode(), "bad_server"),
    (f"{T},5,recommendation request h:1, status 200, result: Heat 1995, 3 ms".encode(), "bad_results"),
    (f"{T},5,recommendation request h:1, status 200, result: {', '.join(['a+1'] * 21)}, 3 ms".encode(),
     "bad_results"),
    (b"2023-10-25T00:56:34,1,GET /data/m/" + b"a" * MAX_LINE_BYTES + b"/1.mpg", "too_long"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTIONS, ids=[f"{i}-{r}" for i, (_, r) in enumerate(REJECTIONS)])
def test_rejections_carry_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedLine) as caught:
        parse_line(raw)
    assert caught.value.reason == reason


# --- properties -------------------------------------------------------------------------------

times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2099, 12, 31))
users = st.integers(min_value=1, max_value=2**63 - 1)
slug_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-'.&!:", min_size=1, max_size=12)
slugs = st.builds(lambda words, year: "+".join([*words, str(year)]),
                  st.lists(slug_words, min_size=1, max_size=6), st.integers(1890, 2030))
versions = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=20)
hosts = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=30)


def _stamp(moment: datetime, with_fraction: bool) -> str:
    return moment.isoformat(timespec="microseconds" if with_fraction else "seconds")


def _expected_time(moment: datetime, with_fraction: bool) -> datetime:
    return moment if with_fraction else moment.replace(microsecond=0)


@given(times, st.booleans(), users, slugs, st.integers(0, 999_999))
def test_any_valid_watch_line_parses_back(moment: datetime, frac: bool, user: int, slug: str, minute: int) -> None:
    line = f"{_stamp(moment, frac)},{user},GET /data/m/{slug}/{minute}.mpg"
    assert parse_line(line.encode()) == WatchEvent(_expected_time(moment, frac), user, slug, minute)


@given(times, st.booleans(), users, slugs, st.integers(1, 5))
def test_any_valid_rating_line_parses_back(moment: datetime, frac: bool, user: int, slug: str, rating: int) -> None:
    line = f"{_stamp(moment, frac)},{user},GET /rate/{slug}={rating}"
    assert parse_line(line.encode()) == RatingEvent(_expected_time(moment, frac), user, slug, rating)


@given(times, st.booleans(), users, st.one_of(st.none(), versions), hosts, st.integers(1, 65535),
       st.integers(100, 599), st.lists(slugs, max_size=20), st.integers(0, 2**31 - 1))
def test_any_valid_recommendation_line_parses_back(
    moment: datetime, frac: bool, user: int, version: str | None, host: str, port: int, status: int,
    results: list[str], latency: int,
) -> None:
    server = f"{version}@{host}:{port}" if version else f"{host}:{port}"
    line = (f"{_stamp(moment, frac)},{user},recommendation request {server}, status {status}, "
            f"result: {', '.join(results)}, {latency} ms")
    assert parse_line(line.encode()) == RecommendationEvent(
        _expected_time(moment, frac), user, server, version, status, tuple(results), latency, line)


@settings(max_examples=500)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise_anything_but_malformed_line(raw: bytes) -> None:
    try:
        parse_line(raw)
    except MalformedLine as bad:
        assert bad.reason


line_like = st.lists(
    st.sampled_from([b"2023-10-25T00:56:34", b"2023-10-25T00:56:34.5", b",", b"185706", b"GET /data/m/",
                     b"GET /rate/", b"recommendation request ", b"h@x:80", b", status ", b"200", b", result: ",
                     b"heat+1995", b"/", b"=", b".mpg", b" ms", b"-", b"0", b"\xc3\xa9", b"\xff", b" "]),
    max_size=14,
).map(b"".join)


@settings(max_examples=1000)
@given(line_like)
def test_near_miss_lines_never_raise_anything_but_malformed_line(raw: bytes) -> None:
    try:
        parse_line(raw)
    except MalformedLine as bad:
        assert bad.reason
