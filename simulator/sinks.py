"""Where stream lines go: Kafka (data_parsing's producer), a file, or stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol, TextIO


class OutputSpecError(ValueError):
    """`--output` is not `kafka`, `stdout` or `file:PATH`."""


class Sink(Protocol):
    def write(self, line: str) -> None: ...
    def close(self) -> None: ...


class TextSink:
    """One line per event on a text stream (a file or stdout)."""

    def __init__(self, stream: TextIO, owned: bool) -> None:
        self._stream = stream
        self._owned = owned

    def write(self, line: str) -> None:
        self._stream.write(line + "\n")

    def close(self) -> None:
        self._stream.flush()
        if self._owned:
            self._stream.close()


class KafkaSink:
    """Lines to the topic through `data_parsing.producer.StreamProducer` (batched, async)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from data_parsing.producer import StreamProducer

        self._producer = StreamProducer(bootstrap, topic, client_id="movierec-simulator")

    def write(self, line: str) -> None:
        self._producer.send(line)

    def close(self) -> None:
        try:
            self._producer.flush()
        finally:
            self._producer.close()


def open_sink(spec: str, bootstrap: str, topic: str) -> Sink:
    """`kafka` | `stdout` | `file:PATH` -> an open sink."""
    if spec == "kafka":
        return KafkaSink(bootstrap, topic)
    if spec == "stdout":
        return TextSink(sys.stdout, owned=False)
    if spec.startswith("file:") and len(spec) > 5:
        path = Path(spec[5:])
        path.parent.mkdir(parents=True, exist_ok=True)
        return TextSink(open(path, "w", encoding="utf-8", buffering=1 << 20), owned=True)
    raise OutputSpecError(f"--output must be kafka, stdout or file:PATH, got {spec!r}")
