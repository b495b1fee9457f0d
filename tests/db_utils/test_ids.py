"""db_utils.ids: the one definition of a user id and a movie id, the tables' limits, and the parser's agreement."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_parsing.parser import MalformedLine, parse_slug, parse_user
from db_utils import ids
from db_utils.models import DeadLetter, Movie, Rating, User, Watch


def test_limits_are_the_columns() -> None:
    assert User.__table__.c.id.type.python_type is int and ids.MAX_USER_ID == 2**63 - 1  # BIGINT
    for column in (Movie.__table__.c.id, Watch.__table__.c.movie_id, Rating.__table__.c.movie_id):
        assert column.type.length == ids.MAX_MOVIE_ID_BYTES
    assert len(str(ids.MAX_USER_ID)) == ids.MAX_USER_ID_DIGITS
    assert DeadLetter.__table__.c.event_key.unique


@pytest.mark.parametrize("raw", ["1", "007", "42", str(2**63 - 1), b"185706"])
def test_valid_user_ids(raw: str | bytes) -> None:
    assert ids.parse_user_id(raw) == int(raw)


@pytest.mark.parametrize("raw", ["", "0", "000", "-1", "+1", " 1", "1 ", "1.0", "1e3", "abc", "..", "1?x", "1#f",
                                 "\uff11", "\u0661", str(2**63), "0" * 20 + "1", b"\xff", b"12\x00"])
def test_invalid_user_ids(raw: str | bytes) -> None:
    with pytest.raises(ids.InvalidUserId, match="user id"):
        ids.parse_user_id(raw)


@pytest.mark.parametrize("raw", ["the+dark+knight+2008", "amélie+2001", "the+hunger+games+mockingjay+-+part+1+2014",
                                 "hamlet+1990+2", "x" * 300])
def test_valid_movie_ids(raw: str) -> None:
    assert ids.parse_movie_id(raw) == raw == ids.parse_movie_id(raw.encode())


@pytest.mark.parametrize("raw", ["", "x" * 301, "The+Dark+Knight", "a,b", "a/b", "a b", "a\tb", "a\x00", "é" * 151,
                                 "\ud800", "Amélie"])
def test_invalid_movie_ids(raw: str) -> None:
    with pytest.raises(ids.InvalidMovieId):
        ids.parse_movie_id(raw)


@given(st.one_of(st.binary(max_size=25), st.text(max_size=25).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_parser_and_ids_agree_on_user_ids(raw: bytes) -> None:
    try:
        expected: int | None = ids.parse_user_id(raw)
    except ids.InvalidUserId:
        expected = None
    try:
        assert parse_user(raw) == expected
    except MalformedLine as bad:
        assert expected is None and bad.reason == "bad_user"


@given(st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_parser_and_ids_agree_on_movie_ids(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return  # the parser rejects the whole line before it looks at a movie id
    try:
        expected: str | None = ids.parse_movie_id(raw)
    except ids.InvalidMovieId:
        expected = None
    try:
        assert parse_slug(raw) == expected
    except MalformedLine as bad:
        assert expected is None and bad.reason == "bad_movie_id"
