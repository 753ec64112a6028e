"""Packaging: environment.yml in step with pyproject, layout, console script, CI entry."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_when_compared_then_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    conda = dict(_norm(d) for d in conda if not d.startswith(("python", "pip")))
    # the conda environment is the development one: the core and the train and report
    # extras from conda-forge (the pip section adds the dev tools)
    extras = project["optional-dependencies"]
    pyproj = dict(_norm(d) for d in project["dependencies"] + extras["train"] + extras["report"])
    assert conda == pyproj, {
        "only in environment.yml": sorted(set(conda.items()) - set(pyproj.items())),
        "only in pyproject.toml": sorted(set(pyproj.items()) - set(conda.items())),
    }
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(line.startswith("-e .") for line in pip_section)


def test_constraints_when_read_then_pin_every_runtime_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line:
            name, ver = line.split("==", 1)
            pins[name.lower().replace("_", "-")] = ver
    extras = project["optional-dependencies"]
    deps = project["dependencies"] + [d for name in ("train", "report", "jupyter", "dev")
                                      for d in extras[name]]
    for dep in deps:
        if _norm(dep)[0] == "research-lib":  # an extra naming other extras of this package
            continue
        assert _norm(dep)[0] in pins, f"{dep} is not pinned in constraints.txt"


def test_layout_when_listed_then_top_level_as_designed():
    for name in ("notebooks", "research_lib", "reports", "models", "config", "tests",
                 "environment.yml", "README.md", "pyproject.toml", ".ci/run", "Makefile"):
        assert (ROOT / name).exists(), name
    assert (ROOT / "research_lib/data/sample/prices.parquet").stat().st_size < 2_000_000


def test_ci_run_when_read_then_calls_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    assert "make test" in readme
    cmds = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")]
    assert cmds[-1] == "make test"


def test_console_script_when_help_then_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "research_lib.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for cmd in ("data", "features", "report", "train", "parity", "routing", "paper",
                "reset-halt", "convert-legacy"):
        assert cmd in out


def test_sample_when_packaged_then_no_shared_path_read_at_runtime():
    for py in (ROOT / "research_lib").rglob("*.py"):
        assert "shared/data" not in py.read_text(), f"{py} refers to ../shared at run time"
