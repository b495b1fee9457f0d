"""Every line the simulator formats parses, with the real data_parsing parser, into the intended event."""

from datetime import datetime

from data_parsing.parser import RatingEvent, RecommendationEvent, WatchEvent, parse_line
from simulator.events import rating_line, recommendation_line, server_token, watch_line

WHEN = datetime(2024, 3, 1, 12, 30, 5, 123456)


def test_watch_line() -> None:
    line = watch_line(WHEN, 185706, "the+dark+knight+2008", 35)
    assert line == "2024-03-01T12:30:05,185706,GET /data/m/the+dark+knight+2008/35.mpg"
    assert parse_line(line.encode()) == WatchEvent(WHEN.replace(microsecond=0), 185706, "the+dark+knight+2008", 35)


def test_rating_line() -> None:
    line = rating_line(WHEN, 7, "the+hunger+games+mockingjay+-+part+1+2014", 4)
    assert line == "2024-03-01T12:30:05,7,GET /rate/the+hunger+games+mockingjay+-+part+1+2014=4"
    assert parse_line(line.encode()) == RatingEvent(WHEN.replace(microsecond=0), 7,
                                                    "the+hunger+games+mockingjay+-+part+1+2014", 4)


def test_recommendation_line_with_version_and_results() -> None:
    server = server_token("blend-v1", "127.0.0.1", 8082)
    line = recommendation_line(WHEN, 128017, server, 200, ["the+green+mile+1999", "the+sound+of+music+1965"], 131)
    assert line == ("2024-03-01T12:30:05.123456,128017,recommendation request blend-v1@127.0.0.1:8082, "
                    "status 200, result: the+green+mile+1999, the+sound+of+music+1965, 131 ms")
    event = parse_line(line.encode())
    assert isinstance(event, RecommendationEvent)
    assert (event.time, event.user_id, event.server, event.model_version, event.status, event.results,
            event.latency_ms) == (WHEN, 128017, "blend-v1@127.0.0.1:8082", "blend-v1", 200,
                                  ("the+green+mile+1999", "the+sound+of+music+1965"), 131)


def test_recommendation_line_for_errors_and_unknown_version() -> None:
    line = recommendation_line(WHEN, 3, server_token(None, "127.0.0.1", 8082), 0, "error: timeout", 800)
    failed = parse_line(line.encode())
    assert isinstance(failed, RecommendationEvent)
    assert (failed.server, failed.model_version, failed.status, failed.results, failed.latency_ms) == (
        "127.0.0.1:8082", None, 0, (), 800)
    empty = parse_line(recommendation_line(WHEN, 3, "v2@localhost:8001", 503, [], 4).encode())
    assert isinstance(empty, RecommendationEvent)
    assert (empty.status, empty.results, empty.model_version) == (503, (), "v2")


def test_twenty_results_fit_the_format() -> None:
    films = [f"film+{i}+2001" for i in range(20)]
    event = parse_line(recommendation_line(WHEN, 1, "v@h:1", 200, films, 9).encode())
    assert isinstance(event, RecommendationEvent) and event.results == tuple(films)
