"""`movierec eval ...` and `movierec inference` dispatch through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.cli import main as inference_main
from movierec.cli import main


def test_eval_offline_without_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "offline", "--data-dir", str(tmp_path), "--report-dir", str(tmp_path / "r")]) == 2
    assert "movierec index build" in capsys.readouterr().err


def test_eval_rejects_unknown_actions_and_strategies(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "sideways"]) == 2
    assert "offline | online" in capsys.readouterr().err
    assert main(["eval", "offline", "--data-dir", str(tmp_path), "--strategies", "seed,magic"]) == 2
    assert "unknown strategy 'magic'" in capsys.readouterr().err
    assert main(["eval", "offline", "--data-dir", str(tmp_path), "--gate", "magic"]) == 2


def test_eval_online_is_dispatched_to_the_release_package(capsys: pytest.CaptureFixture) -> None:
    # load_balancer.release.online_eval parses its own arguments: without a release id argparse exits with 2.
    with pytest.raises(SystemExit) as exited:
        main(["eval", "online"])
    assert exited.value.code == 2
    assert "release_id" in capsys.readouterr().err


def test_inference_rejects_an_unknown_strategy(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        inference_main(["inference", "--strategy", "magic"])
    assert "invalid choice" in capsys.readouterr().err


def test_strategy_option_keeps_an_explicit_model_version() -> None:
    # The release pipeline starts each nightly as `inference --strategy blend` with MODEL_VERSION set to
    # a label unique to the release; the label must survive, or the arms cannot be told apart.
    from inference.cli import _inference_parser, settings_from_args

    def version(argv: list[str], environ: dict[str, str]) -> tuple[str, str]:
        settings = settings_from_args(_inference_parser().parse_args(argv), environ)
        return settings.strategy, settings.model_version

    assert version(["--strategy", "blend"], {"MODEL_VERSION": "blend-20260101-r1"}) == ("blend", "blend-20260101-r1")
    assert version(["--strategy", "popularity"], {}) == ("popularity", "popularity-v1")
    assert version(["--strategy", "blend", "--model-version", "b2"], {"MODEL_VERSION": "x"}) == ("blend", "b2")
    assert version(["--model-version", "b3"], {"INFERENCE_STRATEGY": "seed"}) == ("seed", "b3")
    assert version([], {"INFERENCE_STRATEGY": "itemknn"}) == ("itemknn", "itemknn-v1")


def test_model_strategy_needs_an_artifact(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from inference.cli import _inference_parser, settings_from_args

    assert main(["eval", "offline", "--data-dir", str(tmp_path), "--gate", "model"]) == 2
    assert "needs --model" in capsys.readouterr().err
    settings = settings_from_args(_inference_parser().parse_args(["--strategy", "model", "--model", "model-x"]), {})
    assert (settings.strategy, settings.model_artifact, settings.model_version) == ("model", "model-x", "")
