"""The layers hold: `lint-imports` checks the contracts in .importlinter (layers, no cycles, no test code in
production, request-time inference without batch code), and every top module of `movierec` is in its layer."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _contracts() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    return config


def test_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                               "sys.exit(lint_imports_command())", "--no-cache"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_top_module_of_movierec_is_in_the_top_layer() -> None:
    """movierec/ holds the top (CLI, supervisor, ...) beside movierec/base/: a new top module joins the layer."""
    top_layer = _contracts()["importlinter:contract:layers"]["layers"].strip().splitlines()[0]
    listed = {name.strip() for name in top_layer.split(":")}
    modules = {f"movierec.{path.stem}" for path in (REPO / "movierec").glob("*.py") if path.stem != "__init__"}
    assert modules == listed


def test_every_package_is_analysed() -> None:
    """A new top-level package must be named in .importlinter, or no contract would see it."""
    roots = set(_contracts()["importlinter"]["root_packages"].split())
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")}
    assert packages == roots


def test_architecture_md_is_what_the_code_draws_now() -> None:
    """ARCHITECTURE.md is generated from the imports: after a change, `movierec architecture > ARCHITECTURE.md`."""
    from movierec.architecture import render

    assert (REPO / "ARCHITECTURE.md").read_text() == render(), "regenerate: movierec architecture > ARCHITECTURE.md"


def test_the_architecture_command_prints_the_document(capsys) -> None:
    from movierec.architecture import render
    from movierec.cli import main

    assert main(["architecture"]) == 0
    assert capsys.readouterr().out == render()
