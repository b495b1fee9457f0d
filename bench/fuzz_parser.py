"""Coverage-guided fuzzing of the stream parser with atheris (libFuzzer).

    python bench/fuzz_parser.py --inputs 1000000

Every input goes through `parse_line` and through the consumer's path (`Batch.add_records`), and
must end as exactly one of: an event whose ids are valid (db_utils.ids), or a dead letter with a
known reason code, a key and a storable line. Every 20,000 inputs the dead letters are written to
a SQLite database with db_utils' insert and counted back. Anything else (an exception that is not
MalformedLine, a rejected line without a reason, a dead letter that is not stored) is a crash:
libFuzzer stops, saves the input under --artifacts and the script exits non-zero.
Prints inputs, crashes (0), accepted and rejected counts per reason, coverage edges and speed;
records them in reports/runs/fuzz-parser.json (`--no-record` to skip).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import atheris
from sqlalchemy import func, select

from db_utils.engine import make_engine, upgrade_database
from db_utils.models import DeadLetter
from db_utils.queries import insert_dead_letters
from movierec.base.benchlog import record_run

with atheris.instrument_imports(include=["data_parsing", "db_utils.ids"]):
    from data_parsing.batch import Batch
    from data_parsing.parser import REASONS, MalformedLine, parse_line
    from db_utils import ids

FLUSH_EVERY = 20_000
SEEDS = [
    b"2023-10-25T00:56:34,185706,GET /data/m/the+dark+knight+2008/35.mpg",
    b"2023-10-25T01:02:11,185706,GET /rate/the+dark+knight+2008=4",
    b"2023-03-20T08:12:38.176557,128017,recommendation request 17645-team14.isri.cmu.edu:8082, status 200, "
    b"result: the+green+mile+1999, the+sound+of+music+1965, 131 ms",
    b"2023-03-20T08:12:38,7,recommendation request blend-v1@127.0.0.1:8082, status 0, result: java.net.Conn, 5 ms",
    "2024-01-01T00:00:00.5,42,GET /data/m/amélie+2001/7.mpg\n".encode(),
]
TOKENS = [b"GET /data/m/", b".mpg", b"GET /rate/", b"recommendation request ", b", status ", b", result: ",
          b" ms", b"2023-10-25T00:56:34", b".176557", b"9223372036854775807", b"@", b":8082", b"+2008", b"=5",
          b"\xc3\xa9", b"\x00", b"\r\n"]


@dataclass
class Tally:
    inputs: int = 0
    accepted: int = 0
    stored: int = 0
    reasons: Counter[str] | None = None


class Harness:
    def __init__(self, target_inputs: int, database_url: str, record: bool) -> None:
        self.target = target_inputs
        self.record = record
        self.tally = Tally(reasons=Counter())
        self.batch = Batch()
        self.engine = make_engine(database_url)
        upgrade_database(database_url, engine=self.engine)
        self.started = time.perf_counter()

    def one_input(self, data: bytes) -> None:
        offset = self.tally.inputs
        self.tally.inputs += 1
        try:
            event = parse_line(data)
        except MalformedLine as bad:
            if bad.reason not in REASONS:
                raise AssertionError(f"unknown reason {bad.reason!r}") from bad
            expected_reason = bad.reason
        else:
            ids.parse_user_id(str(event.user_id))
            for movie_id in [getattr(event, "movie_id", None), *getattr(event, "results", ())]:
                if movie_id is not None:
                    ids.parse_movie_id(movie_id)
            expected_reason = None
        letters_before = len(self.batch.dead_letters)
        events_before = sum(self.batch.events.values())
        self.batch.add("fuzz", 0, offset, data, timestamp_ms=1_700_000_000_000)
        letters = self.batch.dead_letters[letters_before:]
        if expected_reason is None:
            assert not letters and sum(self.batch.events.values()) == events_before + 1, "accepted line not folded"
            self.tally.accepted += 1
        else:
            assert len(letters) == 1 and letters[0].reason == expected_reason, "rejected line without its letter"
            assert letters[0].event_key and "\ud800" not in letters[0].raw_line
            self.tally.reasons[expected_reason] += 1
        if self.tally.inputs % FLUSH_EVERY == 0 or self.tally.inputs == self.target:
            self.flush()
        if self.tally.inputs == self.target:
            self.report()
            sys.stdout.flush()
            os._exit(0)  # libFuzzer would go on; the stated number of inputs is done

    def flush(self) -> None:
        """Write this batch's dead letters and check that the table holds every one of them."""
        rows = self.batch.rows().dead_letters
        with self.engine.begin() as conn:
            insert_dead_letters(conn, rows)
        self.tally.stored += len(rows)
        with self.engine.connect() as conn:
            in_table = conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one()
        assert in_table == self.tally.stored == sum(self.tally.reasons.values()), (in_table, self.tally)
        self.batch = Batch()

    def report(self) -> None:
        seconds = time.perf_counter() - self.started
        rejected = sum(self.tally.reasons.values())
        figures = {"inputs": self.tally.inputs, "crashes": 0, "accepted": self.tally.accepted, "rejected": rejected,
                   "rejected_with_reason": rejected, "dead_letters_stored": self.tally.stored,
                   "reasons": dict(self.tally.reasons.most_common()), "seconds": round(seconds, 1),
                   "inputs_per_second": round(self.tally.inputs / seconds)}
        print(json.dumps(figures, indent=2))
        print(f"fuzz: {self.tally.inputs} inputs, 0 crashes; {rejected} rejected, every one dead-lettered with a "
              f"reason and stored; {self.tally.accepted} accepted")
        if self.record:
            print(f"recorded in {record_run('fuzz-parser', figures, notes='atheris (libFuzzer), coverage-guided')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs to run (default 1,000,000)")
    parser.add_argument("--max-len", type=int, default=9000, help="longest input in bytes (lines are cut at 8192)")
    parser.add_argument("--artifacts", default=None, help="where a crashing input is saved (default: a temp dir)")
    parser.add_argument("--no-record", action="store_true", help="do not write reports/runs/fuzz-parser.json")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="movierec-fuzz-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(SEEDS):
        (corpus / f"seed-{index}").write_bytes(seed)
    dictionary = work / "stream.dict"
    dictionary.write_text("".join(f'"{_escaped(token)}"\n' for token in TOKENS))
    artifacts = Path(args.artifacts or work / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)

    harness = Harness(args.inputs, f"sqlite:///{work / 'dead-letters.db'}", record=not args.no_record)
    libfuzzer_args = [sys.argv[0], f"-max_len={args.max_len}", f"-dict={dictionary}",
                      f"-artifact_prefix={artifacts}/", "-seed=1", str(corpus)]
    atheris.Setup(libfuzzer_args, harness.one_input)
    atheris.Fuzz()  # returns only through os._exit after the last input, or libFuzzer's exit on a crash
    return 1


def _escaped(token: bytes) -> str:
    """A libFuzzer dictionary entry: every byte as \\xNN."""
    return "".join(f"\\x{byte:02x}" for byte in token)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
