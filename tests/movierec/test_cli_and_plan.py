"""The movierec command table and the local platform's service plan."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from movierec.cli import COMMANDS, SUBCOMMANDS, main
from movierec.services import UpSettings, plan_services, scrape_targets


def test_every_command_module_exists() -> None:
    for name, (module, _) in COMMANDS.items():
        assert importlib.util.find_spec(module) is not None, f"{name}: module {module} missing"
    for (name, action), module in SUBCOMMANDS.items():
        assert name in COMMANDS and importlib.util.find_spec(module) is not None, f"{name} {action}: {module} missing"


def test_help_lists_commands(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"  {name}" in out


def test_unknown_command_is_an_error(capsys) -> None:
    assert main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_console_script_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "movierec.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "commands:" in result.stdout


def _plan(environ: dict[str, str], with_monitoring: bool = True):
    settings = UpSettings.from_env(environ)
    binary = Path("/usr/bin/true")
    return plan_services(settings, tansu=binary, prometheus=binary if with_monitoring else None,
                         alertmanager=binary if with_monitoring else None, monitoring_dir=Path("/tmp/m"))


def test_plan_uses_only_real_commands_and_distinct_ports(tmp_path) -> None:
    specs = _plan({"MOVIEREC_DATA_DIR": str(tmp_path)})
    names = [s.name for s in specs]
    assert names[0] == "broker" and "router" in names and names[-1] == "simulator"
    for spec in specs:
        if spec.argv[1:3] == ("-m", "movierec.cli"):
            assert spec.argv[3] in COMMANDS, spec
    ports = [s.port for s in specs if s.port]
    assert len(ports) == len(set(ports))
    router = next(s for s in specs if s.name == "router")
    assert router.env["LB_MAIN_URL"] == "http://127.0.0.1:8001"
    assert router.env["DATABASE_URL"].startswith("sqlite:///")
    assert "router" in scrape_targets(specs)


def test_plan_without_monitoring_binaries_or_simulator(tmp_path) -> None:
    specs = _plan({"MOVIEREC_DATA_DIR": str(tmp_path), "UP_SIMULATOR": "0"}, with_monitoring=False)
    names = {s.name for s in specs}
    assert "prometheus" not in names and "simulator" not in names and "dashboard" in names
