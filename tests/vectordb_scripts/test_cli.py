"""`movierec data|catalog|index` dispatch (vectordb_scripts.cli)."""

from pathlib import Path

import pytest

from vectordb_scripts.cli import main


@pytest.mark.parametrize("argv", [[], ["data"], ["data", "pull"], ["catalog"], ["catalog", "make"], ["nope"]])
def test_unknown_or_missing_sub_commands_exit_2(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_catalog_build_without_fetched_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["catalog", "build", "--data-dir", str(tmp_path), "--no-db"]) == 1
    assert "run `movierec data fetch` first" in capsys.readouterr().err
