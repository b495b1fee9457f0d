"""What bench records say about the CPU they ran on (movierec.base.cpu)."""

from __future__ import annotations

from pathlib import Path

from movierec.base.cpu import cpu_description, cpu_flags, describe_cpu

MILAN = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
cpu MHz\t\t: 2445.426
flags\t\t: fpu sse2 fma avx avx2
processor\t: 1
model name\t: another core
cpu MHz\t\t: 1000.000
"""
GENOA_FLAGS = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\ncpu family\t: 25\nmodel\t\t: 17\n" \
    "flags\t\t: avx2 avx512f avx512_bf16\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\nCPU part\t: 0xd4f\n"


def test_an_x86_cpu_is_described_by_its_first_core() -> None:
    assert describe_cpu(MILAN) == {"model": "AMD EPYC", "family_model": "25/1", "mhz": 2445, "vector": ["avx2"]}
    assert describe_cpu(GENOA_FLAGS)["vector"] == ["avx2", "avx512f", "avx512_bf16"]


def test_an_arm_cpu_and_an_empty_cpuinfo() -> None:
    assert describe_cpu(GRAVITON) == {"model": "0xd4f", "vector": ["asimd", "bf16"]}
    assert describe_cpu("") == {"model": "unknown", "vector": []}


def test_unreadable_cpuinfo_gives_no_flags_and_an_unknown_model(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert cpu_description(tmp_path / "missing") == {"model": "unknown", "vector": []}
