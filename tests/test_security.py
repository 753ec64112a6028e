"""Security: no pickle is loaded outside the explicit convert command (in the source and at
run time), YAML is read with safe_load only, a model path cannot leave models/, and ONNX
external data cannot leave the model's folder."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from research_lib.cli import main
from research_lib.config import ConfigWatcher, load_assets, load_risk, load_session, parse_assets
from research_lib.errors import ConfigError
from research_lib.features import N_FEATURES
from research_lib.models.onnx import OnnxModel, UnsafeModelFileError
from research_lib.models.router import Router
from research_lib.models.settings import load_settings
from tests.kit.paper import write_config

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "research_lib"
MODELS = ROOT / "models"

# --------------------------------------------------------------- no pickle: the source
# (module, attribute) calls that deserialise code-carrying formats
UNSAFE = {
    **{(m, f): "pickle" for m in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
       for f in ("load", "loads", "Unpickler")},
    ("joblib", "load"): "pickle",
    ("torch", "load"): "pickle",
    ("pandas", "read_pickle"): "pickle",
    ("shelve", "open"): "pickle",
    ("marshal", "load"): "marshal",
    ("marshal", "loads"): "marshal",
    **{("yaml", f): "yaml" for f in ("load", "load_all", "unsafe_load", "unsafe_load_all",
                                     "full_load", "full_load_all", "Loader", "UnsafeLoader",
                                     "FullLoader")},
}
# the one place a pickle may be loaded: the explicit, --trust-gated convert command
ALLOWED = {("research_lib/models/legacy.py", "convert_legacy")}


def unsafe_loads(source: str, filename: str = "<src>") -> list[tuple[int, str, str]]:
    """``(line, enclosing function, what)`` for each unsafe load call or loader reference in
    ``source``; ``np.load`` only when ``allow_pickle`` is not literally False."""
    tree = ast.parse(source, filename)
    alias: dict[str, str | tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                alias[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                alias[a.asname or a.name] = (node.module.split(".")[0], a.name)

    def target(node: ast.AST) -> tuple[str, str] | None:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            mod = alias.get(node.value.id, node.value.id)
            if isinstance(mod, str):
                return ({"np": "numpy", "pd": "pandas"}.get(mod, mod), node.attr)
        if isinstance(node, ast.Name) and isinstance(alias.get(node.id), tuple):
            return alias[node.id]  # type: ignore[return-value]
        return None

    found: list[tuple[int, str, str]] = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            here = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            t = target(child) if isinstance(child, ast.Attribute | ast.Name) else None
            if t in UNSAFE:
                found.append((child.lineno, here, f"{t[0]}.{t[1]}"))
            if isinstance(child, ast.Call) and target(child.func) == ("numpy", "load"):
                kw = {k.arg: k.value for k in child.keywords}
                ap = kw.get("allow_pickle")
                if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                    found.append((child.lineno, here, "numpy.load(allow_pickle=...)"))
            visit(child, here)

    visit(tree, "<module>")
    return found


@pytest.mark.parametrize("code", [
    "import pickle\npickle.loads(b'')",
    "import pickle as p\ndef f():\n    return p.load(open('x', 'rb'))",
    "from pickle import loads\nloads(b'')",
    "from pickle import Unpickler as U\nU(f).load()",
    "import joblib\njoblib.load('m.joblib')",
    "import cloudpickle\ncloudpickle.loads(b'')",
    "import dill\ndill.load(f)",
    "import torch\ntorch.load('m.pt')",
    "import pandas as pd\npd.read_pickle('x.pkl')",
    "import numpy as np\nnp.load('x.npy', allow_pickle=True)",
    "import numpy\nnumpy.load('x.npy', allow_pickle=flag)",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)",
    "import yaml\nyaml.unsafe_load(text)",
    "import yaml\nyaml.full_load(text)",
    "import shelve\nshelve.open('db')",
    "import marshal\nmarshal.loads(b'')",
])
def test_pickle_scan_when_an_unsafe_load_is_written_then_it_is_found(code):
    assert unsafe_loads(code), code


@pytest.mark.parametrize("code", [
    "import numpy as np\nnp.load('x.npy')",
    "import numpy as np\nnp.load('x.npy', allow_pickle=False)",
    "import yaml\nyaml.safe_load(text)",
    "import pickle\npickle.dumps(obj)",
    "import onnx\nonnx.load_model_from_string(b'')",
])
def test_pickle_scan_when_the_load_is_safe_then_nothing_is_found(code):
    assert unsafe_loads(code) == []


def test_no_pickle_or_unsafe_yaml_load_in_the_package_outside_convert_legacy():
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for line, func, what in unsafe_loads(path.read_text(encoding="utf-8"), rel):
            if (rel, func) not in ALLOWED:
                hits.append(f"{rel}:{line} in {func}: {what}")
    assert hits == []
    # and the allowed place really is the scan's blind spot, not a dead entry
    legacy_py = (PACKAGE / "models" / "legacy.py").read_text(encoding="utf-8")
    assert {f for _, f, _ in unsafe_loads(legacy_py)} == {"convert_legacy"}


# -------------------------------------------------------------- no pickle: at run time
@pytest.fixture
def no_unpickling(monkeypatch):
    """Every way in to unpickling raises (and is counted)."""
    import _pickle
    import pickle

    import joblib
    import pandas

    calls: list[str] = []

    def refuse(name):
        def f(*a, **k):
            calls.append(name)
            raise AssertionError(f"{name} called: research_lib must not unpickle anything")
        return f

    for mod, names in ((pickle, ("load", "loads", "Unpickler")),
                       (_pickle, ("load", "loads", "Unpickler")),
                       (joblib, ("load",)), (pandas, ("read_pickle",))):
        for n in names:
            monkeypatch.setattr(mod, n, refuse(f"{mod.__name__}.{n}"))
    real_np_load = np.load

    def np_load(*a, allow_pickle=False, **k):
        if allow_pickle:
            calls.append("numpy.load(allow_pickle=True)")
            raise AssertionError("numpy.load with allow_pickle=True")
        return real_np_load(*a, allow_pickle=False, **k)

    monkeypatch.setattr(np, "load", np_load)
    with pytest.raises(AssertionError):
        pickle.loads(pickle.dumps(1))  # noqa: S301 - the trap is armed
    calls.clear()
    return calls


def test_paper_session_routing_and_parity_never_unpickle(tmp_path, monkeypatch, capsys,
                                                        no_unpickling):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")  # load every class model too
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    shutil.copy(ROOT / "config" / "assets.yaml", cfg / "assets.yaml")

    code = main(["paper", "--symbols", "SPY,BTC-USD", "--start", "2018-10-01", "--end",
                 "2018-12-31", "--config-dir", str(cfg), "--run-dir", str(tmp_path / "runs"),
                 "--json"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] > 50 and summary["model"] == "router"
    assert main(["routing", "--symbols", "SPY,BTC-USD"]) == 0
    assert "ENABLED" in capsys.readouterr().out
    assert main(["parity", str(MODELS / "crypto_v1.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    assert main(["convert-legacy", str(tmp_path / "old.pkl"), "--out",
                 str(tmp_path / "old.onnx")]) == 2  # without --trust: refused, not read

    assert no_unpickling == []


# --------------------------------------------------------------------- YAML safe_load
MARKER = "code-ran"


def _tagged(tmp_path: Path) -> dict[str, tuple[str, object]]:
    """Each config file with a tag that, if constructed, would run ``touch MARKER``."""
    boom = f'!!python/object/apply:os.system ["touch {tmp_path / MARKER}"]'
    return {
        "risk.yaml": (f"risk:\n  max_position_pct: {boom}\n", load_risk),
        "session.yaml": (f"session: {boom}\n", load_session),
        "assets.yaml": (f"universal_model: {boom}\n", load_assets),
        "models.yaml": (f"seed: {boom}\n", load_settings),
    }


@pytest.mark.parametrize("name", ["risk.yaml", "session.yaml", "assets.yaml", "models.yaml"])
def test_config_file_when_python_object_tag_then_refused_and_nothing_runs(tmp_path, name):
    text, loader = _tagged(tmp_path)[name]
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ConfigError, match=r"(?s)not valid YAML .*tags such as !!python/object "
                                          r"are refused") as e:
        loader(p)
    assert str(p) in str(e.value)
    assert not (tmp_path / MARKER).exists()


def test_paper_when_a_config_file_carries_a_python_tag_then_exit_2_nothing_runs_no_run(
        tmp_path, capsys):
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    (cfg / "risk.yaml").write_text(_tagged(tmp_path)["risk.yaml"][0])
    code = main(["paper", "--symbols", "SPY", "--config-dir", str(cfg), "--run-dir",
                 str(tmp_path / "runs"), "--model", "baseline:buy_and_hold"])
    assert code == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert not (tmp_path / MARKER).exists() and not (tmp_path / "runs").exists()


def test_hot_reload_when_an_edit_carries_a_python_tag_then_previous_config_kept(tmp_path):
    p = tmp_path / "risk.yaml"
    p.write_text("risk:\n  max_position_pct: 0.15\n")
    w = ConfigWatcher(p, load_risk)
    p.write_text(_tagged(tmp_path)["risk.yaml"][0] + "# changed\n")
    assert w.current().max_position_pct == 0.15
    assert "not valid YAML" in (w.last_error or "")
    assert not (tmp_path / MARKER).exists()


# ------------------------------------------------------- model paths stay in models/
def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _assets(path: str, sha: str):
    return parse_assets({
        "universal_model": "universal_v1",
        "classes": {"equities": {"patterns": ["*"], "model": "universal_v1"}},
        "models": {"universal_v1": {"path": path, "sha256": sha}},
    }, source="test-assets.yaml")


def test_model_path_when_a_folder_inside_models_links_outside_then_refused(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(MODELS / "universal_v1.onnx", outside / "universal_v1.onnx")
    (models / "sub").symlink_to(outside, target_is_directory=True)
    router = Router(_assets("sub/universal_v1.onnx", _sha(outside / "universal_v1.onnx")),
                    models_dir=models)

    st = router.status("universal_v1")
    assert st.state == "refused" and "outside" in st.problem and "refused" in st.problem
    [route] = router.routes(["SPY"], mode="0")
    assert not route.checksum_ok  # so a session refuses to start on it
    [pred] = router.predict(["SPY"], np.zeros((1, N_FEATURES)))
    assert pred.probability is None


# ------------------------------------------------ ONNX external data stays beside it
def _with_external_weights(folder: Path, name: str = "ext.onnx") -> Path:
    """A small classifier whose weights live in ``weights.bin`` beside it, written by
    onnx.external_data_helper."""
    from onnx import helper, numpy_helper
    from onnx.external_data_helper import convert_model_to_external_data

    w = np.linspace(-1, 1, N_FEATURES * 2, dtype=np.float32).reshape(N_FEATURES, 2)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "ext",
        [helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, [None, N_FEATURES])],
        [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(w, "W")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    convert_model_to_external_data(m, all_tensors_to_one_file=True, location="weights.bin",
                                   size_threshold=0)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(m, str(folder / name))
    assert (folder / "weights.bin").is_file()
    return folder / name


def test_onnx_when_external_data_file_is_a_symlink_leaving_the_folder_then_refused(tmp_path):
    path = _with_external_weights(tmp_path / "models")
    OnnxModel(path)  # beside it: loads
    outside = tmp_path / "secret.bin"
    shutil.move(tmp_path / "models" / "weights.bin", outside)
    (tmp_path / "models" / "weights.bin").symlink_to(outside)

    with pytest.raises(UnsafeModelFileError, match=r"tensor 'W' references external data "
                                                   r"'weights.bin' outside the model's folder"):
        OnnxModel(path)


def test_router_when_registry_model_has_external_data_outside_then_unusable_with_reason(
        tmp_path):
    path = _with_external_weights(tmp_path / "models")
    m = onnx.load_model(str(path), load_external_data=False)
    [loc] = [e for e in m.graph.initializer[0].external_data if e.key == "location"]
    loc.value = "../secret.bin"
    shutil.copy(tmp_path / "models" / "weights.bin", tmp_path / "secret.bin")
    path.write_bytes(m.SerializeToString())
    router = Router(_assets("ext.onnx", _sha(path)), models_dir=tmp_path / "models")

    st = router.status("universal_v1")
    assert st.state == "invalid"
    assert "'../secret.bin' outside the model's folder" in st.problem
    assert not router.routes(["SPY"], mode="0")[0].checksum_ok
