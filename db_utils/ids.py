"""What a user id and a movie id are: one definition for the router, inference and the parser.

Pure (no I/O, no SQLAlchemy) and in `db_utils` because the tables decide the limits: a user id is
stored as a BIGINT, a movie id as a String(300) (see models.py), and every service that accepts an
id from outside (an URL path, a stream line) must accept exactly what the tables can hold.

- user id: a positive decimal integer (ASCII digits only, leading zeros allowed) <= 2**63 - 1;
  its canonical text is `str(int)`.
- movie id: a catalogue slug (`the+dark+knight+2008`, see vectordb_scripts/slugs.py): 1 to 300
  UTF-8 bytes, lower case, printable, without `,` `/` or whitespace (the stream's separators).
  The catalogue decides which punctuation it keeps; an unknown movie is still a movie id.
"""

from __future__ import annotations

import string

MAX_USER_ID = 2**63 - 1  # BIGINT
MAX_USER_ID_DIGITS = 19  # len(str(MAX_USER_ID)); leading zeros beyond it are refused too
MAX_MOVIE_ID_BYTES = 300  # movies.id, watches.movie_id, ratings.movie_id: String(300)

# Accepted ASCII in a movie id: lower-case letters, digits, printable punctuation except `,` and `/`.
MOVIE_ID_ASCII = (string.ascii_lowercase + string.digits + string.punctuation).replace(",", "").replace("/", "")
MOVIE_ID_ASCII_BYTES = MOVIE_ID_ASCII.encode("ascii")


class InvalidUserId(ValueError):
    """Not a positive integer that fits a BIGINT; the message says why."""


class InvalidMovieId(ValueError):
    """Not a catalogue slug; the message says why."""


def parse_user_id(raw: str | bytes) -> int:
    """The user id in `raw` (text or bytes), or InvalidUserId with the reason."""
    digits = raw.encode("ascii", errors="replace") if isinstance(raw, str) else raw
    if not digits or not digits.isdigit() or not digits.isascii():
        shown = raw[:40] if isinstance(raw, str) else raw[:40].decode("utf-8", errors="replace")
        raise InvalidUserId(f"user id must be a positive integer, got {shown!r}")
    if len(digits) > MAX_USER_ID_DIGITS:
        raise InvalidUserId(f"user id must be at most {MAX_USER_ID} ({MAX_USER_ID_DIGITS} digits)")
    value = int(digits)
    if value <= 0:
        raise InvalidUserId("user id must be positive")
    if value > MAX_USER_ID:
        raise InvalidUserId(f"user id must be at most {MAX_USER_ID}")
    return value


def parse_movie_id(raw: str | bytes) -> str:
    """The movie id in `raw` (text, or bytes already known to be UTF-8), or InvalidMovieId."""
    data = raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else raw
    if not data:
        raise InvalidMovieId("movie id is empty")
    if len(data) > MAX_MOVIE_ID_BYTES:
        raise InvalidMovieId(f"movie id is longer than {MAX_MOVIE_ID_BYTES} bytes")
    if data.isascii():
        if data.translate(None, MOVIE_ID_ASCII_BYTES):
            raise InvalidMovieId("movie id may hold lower-case letters, digits and punctuation except , and /")
        return data.decode("ascii")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMovieId("movie id is not UTF-8") from None
    if not text.isprintable() or text != text.lower() or any(c.isspace() or c in ",/" for c in text):
        raise InvalidMovieId("movie id must be printable lower case without whitespace, , or /")
    return text
