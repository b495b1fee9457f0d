"""What this machine's CPU is, from /proc/cpuinfo: its feature flags (the index picks bf16 by them) and a
short description that bench records carry, since the same figures differ a lot between CPUs."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# The vector units that decide embedding and ranking speed, in the order they are listed in a record.
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "asimd", "bf16")


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of /proc/cpuinfo's text ("flags" lines on x86, "Features" on Arm)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def describe_cpu(cpuinfo: str) -> dict[str, Any]:
    """Model name, x86 family/model, clock (MHz, as the first core reports it) and vector units."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key not in fields:
            fields[key] = value.strip()
    flags = parse_cpu_flags(cpuinfo)
    described: dict[str, Any] = {"model": fields.get("model name", fields.get("cpu part", "unknown"))}
    if "cpu family" in fields:
        described["family_model"] = f"{fields['cpu family']}/{fields.get('model', '?')}"
    if "cpu mhz" in fields:
        with contextlib.suppress(ValueError):  # a malformed clock is left out, not fatal
            described["mhz"] = round(float(fields["cpu mhz"]))
    described["vector"] = [flag for flag in VECTOR_FLAGS if flag in flags]
    return described


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@functools.cache
def cpu_flags(path: Path = CPUINFO) -> frozenset[str]:
    """This machine's CPU feature flags, read once per process; empty where /proc/cpuinfo is not readable."""
    return parse_cpu_flags(_read(path))


@functools.cache
def cpu_description(path: Path = CPUINFO) -> dict[str, Any]:
    """`describe_cpu` of this machine (read once per process)."""
    return describe_cpu(_read(path))
