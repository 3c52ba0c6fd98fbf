"""environment.yml and pyproject.toml must not drift apart; the CLI lists its commands."""

import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = env["dependencies"]
    python = [d for d in deps if isinstance(d, str) and d.startswith("python")]
    assert python == ["python=3.11"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    extras = sorted(project["optional-dependencies"])
    assert pip == [f"-e .[{','.join(extras)}]"], "environment.yml must install the package with every extra"
    # conda-level packages, if any, must be runtime dependencies of the package too
    names = ({d.split("=")[0].split(">")[0].split("<")[0] for d in deps if isinstance(d, str)}
             - {"python", "pip"})
    declared = {r.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip()
                for r in project["dependencies"]}
    assert names <= declared, f"environment.yml lists packages pyproject does not: {names - declared}"


def test_cli_help_lists_commands():
    from agan.cli import COMMANDS

    out = subprocess.run([sys.executable, "-m", "agan", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for name in COMMANDS:
        assert name in out


def test_cli_info_reports_parameter_count():
    out = subprocess.run([sys.executable, "-m", "agan", "info", "--size", "32x32"], capture_output=True,
                         text=True, check=True).stdout
    assert "6,244,362" in out
