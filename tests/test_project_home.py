"""The project home and the one rule for relative paths (research_lib/project.py), and
``research-lib init``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from research_lib.cli import main
from research_lib.errors import ConfigError
from research_lib.project import (
    SHIPPED_PATTERNS,
    find_home,
    init_home,
    packaged_home,
    project_root,
    resolve_path,
    shipped_files,
    work_root,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_home(tmp_path, monkeypatch) -> Path:
    """An empty working folder and no RESEARCH_LIB_HOME: the packaged defaults apply."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.delenv("RESEARCH_LIB_HOME", raising=False)
    monkeypatch.chdir(work)
    return work


# ------------------------------------------------------------------ the rule
def test_home_when_none_found_then_packaged_defaults_read_and_cwd_written(no_home):
    assert find_home() is None
    assert project_root() == packaged_home()
    assert work_root() == no_home
    assert resolve_path("runs/x") == no_home / "runs" / "x"
    assert resolve_path("/abs/x") == Path("/abs/x")


def test_home_when_cwd_is_below_a_home_then_the_home_is_found(no_home, tmp_path):
    home = tmp_path / "proj"
    (home / "config").mkdir(parents=True)
    (home / "config" / "assets.yaml").write_text("{}")
    (home / "notebooks").mkdir()
    import os

    os.chdir(home / "notebooks")  # a notebook's working folder in JupyterLab
    assert find_home() == home
    assert project_root() == home
    assert resolve_path("reports/a.html") == home / "reports" / "a.html"


def test_home_when_env_names_a_missing_folder_then_config_error_naming_it(
        monkeypatch, tmp_path):
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="RESEARCH_LIB_HOME.*not a folder.*research-lib init"):
        find_home()


def test_cli_home_option_when_given_then_used_for_the_command_and_restored(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(ROOT))
    assert main(["init", str(tmp_path / "h")]) == 0
    capsys.readouterr()
    code = main(["--home", str(tmp_path / "h"), "runs", "list", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out) == []
    import os

    assert os.environ["RESEARCH_LIB_HOME"] == str(ROOT)  # given back after the command
    assert main(["--home", str(tmp_path / "missing"), "routing"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_help_when_printed_then_states_the_rule(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--home" in out and "RESEARCH_LIB_HOME" in out
    assert "every relative path" in out and "packaged" in out


def test_version_when_asked_then_printed(capsys):
    import research_lib

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"research-lib {research_lib.__version__}"


def test_setup_hook_when_read_then_ships_the_patterns_init_copies():
    import ast

    tree = ast.parse((ROOT / "setup.py").read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                and getattr(n.targets[0], "id", "") == "HOME_FILES")
    assert ast.literal_eval(node.value) == SHIPPED_PATTERNS


# ------------------------------------------------- paper and train: one rule
def test_paper_and_train_when_run_below_the_home_then_relative_paths_land_in_the_home(
        tmp_path, monkeypatch, capsys):
    """`train --out` was taken from the working folder and `paper --run-dir` from the
    project root: run from <home>/notebooks, the model landed in notebooks/models/."""
    monkeypatch.delenv("RESEARCH_LIB_HOME", raising=False)
    home = tmp_path / "home"
    init_home(home)
    monkeypatch.chdir(home / "notebooks")
    code = main(["paper", "--symbols", "SPY", "--start", "2018-01-02", "--end", "2018-02-01",
                 "--model", "baseline:buy_and_hold", "--run-dir", "myruns", "--run-id", "r1",
                 "--json"])
    assert code == 0, capsys.readouterr().err
    assert (home / "myruns" / "r1" / "ledger.sqlite").is_file()
    code = main(["train", "--asset-class", "crypto", "--symbols", "BTC-USD", "--start",
                 "2017-01-01", "--end", "2019-12-31", "--out", "models/mine.onnx"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"pin it in {home / 'config' / 'assets.yaml'}:  mine: {{path: mine.onnx" in out
    assert (home / "models" / "mine.onnx").is_file()
    assert (home / "models" / "mine.json").is_file()
    assert not (home / "notebooks" / "models").exists()
    assert not (home / "notebooks" / "myruns").exists()


# ---------------------------------------------------------------------- init
def test_init_when_folder_is_new_then_home_laid_out_byte_for_byte_and_pins_hold(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = init_home("proj")
    home = tmp_path / "proj"
    assert res.home == home and res.kept == []
    for d in ("config", "models", "notebooks", "runs", "reports"):
        assert (home / d).is_dir(), d
    rels = shipped_files()
    assert sorted(res.copied) == sorted(str(r) for r in rels)
    for rel in rels:
        assert (home / rel).read_bytes() == (packaged_home() / rel).read_bytes(), rel
    assets = yaml.safe_load((home / "config" / "assets.yaml").read_text())
    for name, entry in assets["models"].items():
        digest = hashlib.sha256((home / "models" / entry["path"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"], name
    assert {p.name for p in (home / "notebooks").glob("*.ipynb")} == \
        {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}


def test_init_when_home_made_then_commands_read_its_models_not_the_packaged_ones(
        tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RESEARCH_LIB_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["init", "h"]) == 0
    monkeypatch.chdir(tmp_path / "h")
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    capsys.readouterr()
    assert main(["routing", "--symbols", "BTC-USD", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {m["state"] for m in doc["models"].values()} == {"ok"}
    # the home's copy changed: its checksum no longer matches its pin, the packaged one does
    with (tmp_path / "h" / "models" / "crypto_v1.onnx").open("ab") as fh:
        fh.write(b"\0")
    main(["routing", "--symbols", "BTC-USD", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["models"]["crypto_v1"]["state"] != "ok"
    assert doc["routes"][0]["model"] != "crypto_v1"


def test_init_when_folder_is_not_empty_then_refused_and_nothing_written(tmp_path, capsys):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    assert main(["init", str(target)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "notes.txt" in err and "--force" in err
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_init_when_forced_on_an_edited_home_then_only_missing_files_added_and_edits_kept(
        tmp_path, capsys):
    home = tmp_path / "h"
    init_home(home)
    risk = home / "config" / "risk.yaml"
    risk.write_text(risk.read_text().replace("0.15", "0.05"))
    edited = risk.read_bytes()
    (home / "notebooks" / "paper_session.ipynb").unlink()
    (home / "mine.txt").write_text("keep me")
    assert main(["init", str(home), "--force"]) == 0
    out = capsys.readouterr().out
    assert risk.read_bytes() == edited
    assert "kept      config/risk.yaml" in out
    assert (home / "notebooks" / "paper_session.ipynb").read_bytes() == \
        (packaged_home() / "notebooks" / "paper_session.ipynb").read_bytes()
    assert (home / "mine.txt").read_text() == "keep me"
    assert "copied    1 file(s)" in out


def test_init_when_target_is_a_file_then_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        init_home(f, force=True)
    assert f.read_text() == "x"


def test_init_when_a_link_sits_where_a_file_goes_then_never_written_through(tmp_path):
    home = tmp_path / "h"
    (home / "config").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    (home / "config" / "risk.yaml").symlink_to(victim)
    res = init_home(home, force=True)
    assert victim.read_text() == "untouched"
    assert "config/risk.yaml" in res.kept


def test_train_hint_when_no_home_or_model_outside_models_then_says_how_to_serve_it(
        no_home, tmp_path, monkeypatch):
    """Trained in a folder with no home, `train` said "pin it in config/assets.yaml", a
    file that does not exist there (the packaged one is read only)."""
    from research_lib.cli.models import serve_hint

    hint = serve_hint(no_home / "m.onnx", "m", "ab" * 32)
    assert "no project home" in hint and "research-lib init DIR" in hint
    home = tmp_path / "h"
    init_home(home)
    monkeypatch.chdir(home)
    hint = serve_hint(home / "elsewhere" / "m.onnx", "m", "ab" * 32)
    assert hint.startswith(f"to serve it, copy the .onnx and its .json card into "
                           f"{home / 'models'}/")
    assert serve_hint(home / "models" / "m.onnx", "m", "ab" * 32).startswith(
        f"pin it in {home / 'config' / 'assets.yaml'}:  m: {{path: m.onnx, sha256: ")
