"""The notebooks as stored in git, the papermill runner's plan, and one papermill run with injected
parameters. (Every notebook is also *executed* by nbval: ``make test`` runs
``pytest --nbval-lax notebooks/`` at each notebook's default cheap parameters.)

Stored means stripped: no outputs, no execution counts, no widget state, no papermill metadata
(``nbstripout notebooks/*.ipynb`` before committing).
"""

import ast
import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
EXPECTED = ["00_quickstart", "01_raindrop_formation", "02_attention_maps", "03_autoencoder_and_losses",
            "04_discriminator", "05_training", "06_ablations", "07_figures",
            "08_explorer"]  # the paper's order
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
COLAB = "https://colab.research.google.com/github/agan-kit/agan/blob/main/notebooks/{}.ipynb"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _parameters_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]


def _run_notebooks_module():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_notebooks"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_every_notebook_is_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_stripped(path):
    nb = _load(path)
    assert "widgets" not in nb["metadata"], f"{path.name}: widget state stored (run nbstripout)"
    assert "papermill" not in nb["metadata"], f"{path.name}: papermill metadata stored (commit the source, "\
        "not notebooks/executed/)"
    for i, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {})
        assert "execution" not in meta and "papermill" not in meta, \
            f"{path.name} cell {i}: execution metadata"
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name} cell {i}: outputs stored (run nbstripout)"
            assert cell["execution_count"] is None, f"{path.name} cell {i}: execution count stored"
        assert "injected-parameters" not in meta.get("tags", []), \
            f"{path.name}: papermill-injected cell stored"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = _load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown"
    assert COLAB.format(path.stem) in _source(first), \
        f"{path.name}: Colab badge missing or pointing elsewhere"

    params = _parameters_cells(nb)
    assert len(params) == 1, \
        f"{path.name}: expected exactly one cell tagged 'parameters', found {len(params)}"
    tree = ast.parse(_source(params[0]))
    values = {}
    for stmt in tree.body:  # literal-only: NAME = <literal>
        assert (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)), \
            f"{path.name}: parameters cell may only hold NAME = literal lines, found {ast.dump(stmt)[:80]}"
        values[stmt.targets[0].id] = ast.literal_eval(stmt.value)
    assert values.get("DEVICE") == "auto"
    assert values.get("PRESET", "cpu") == "cpu"
    rn = _run_notebooks_module()
    assert rn.notebook_parameters(path) == values
    pm = pytest.importorskip("papermill")  # `papermill --help-notebook` must see the same names
    assert set(pm.inspect_notebook(str(path))) == set(values)

    code = [_source(c) for c in nb["cells"] if c["cell_type"] == "code"]
    install = [s for s in code if "google.colab" in s]
    assert len(install) == 1 and '"google.colab" in sys.modules' in install[0], \
        f"{path.name}: one install cell, acting on Colab only"
    assert len(install[0].strip().splitlines()) <= 6 and f'setup("{path.name}")' in install[0], \
        f"{path.name}: the Colab cell is a few lines calling agan/colab.py's setup for this notebook"
    for src in code:
        tree = ast.parse(src)  # valid Python: no shell escapes or magics
        for node in ast.walk(tree):  # thin drivers: models live in agan, not in notebooks
            assert not isinstance(node, ast.ClassDef), \
                f"{path.name}: class {node.name} defined in a notebook"
            assert not (isinstance(node, ast.FunctionDef) and node.name == "forward"), \
                f"{path.name}: forward()"


def test_runner_plans_both_parameter_files():
    rn = _run_notebooks_module()
    notebooks = rn.discover()
    for name in ("cpu", "paper"):
        params = rn.load_params(ROOT / "params" / f"{name}.yaml")
        jobs = rn.plan(params, notebooks, {}, None)
        assert sorted(nb.stem for nb, _, _ in jobs) == EXPECTED
        for nb, injected, timeout in jobs:
            assert injected.get("PRESET", name) == name and injected["DEVICE"] == "auto" and timeout > 0
        train = next(j for j in jobs if j[0].stem == "05_training")
        assert train[1]["RUN_DIR"] == f"../runs/{name}"
        assert train[1]["PROGRESS"] is False  # executed copies keep the log lines, not every bar update


def test_reproduce_scores_training_on_the_real_pairs_when_present():
    """Both parameter files let 05_training find ../shared/real/train_pairs itself (skipped, said so,
    without)."""
    rn = _run_notebooks_module()
    for name in ("cpu", "paper"):
        jobs = rn.plan(rn.load_params(ROOT / "params" / f"{name}.yaml"), rn.discover(), {}, None)
        train = next(j for j in jobs if j[0].stem == "05_training")
        assert train[1]["REAL_VAL"] == "auto"
    src = "".join(_source(c) for c in _load(NB_DIR / "05_training.ipynb")["cells"]
                  if c["cell_type"] == "code")
    assert "default_real_dir()" in src and '"real_val": real_val' in src


def test_runner_rejects_unknown_parameters(tmp_path):
    rn = _run_notebooks_module()
    params = rn.load_params(ROOT / "params" / "cpu.yaml")
    with pytest.raises(ValueError, match="NOT_A_PARAMETER"):
        rn.plan(params, rn.discover(), {"NOT_A_PARAMETER": 1}, None)
    bad = {**params, "notebooks": {"02_attention_maps": {"SIZ": 64}}}
    with pytest.raises(ValueError, match="'SIZ' is not in its parameters cell"):
        rn.plan(bad, rn.discover(), {}, None)
    (tmp_path / "p.yaml").write_text("commn: {}\n")
    with pytest.raises(ValueError, match="unknown top-level keys"):
        rn.load_params(tmp_path / "p.yaml")


def test_papermill_injects_parameters(tmp_path, monkeypatch):
    """Run 02_attention_maps through papermill with non-default parameters and check they took effect."""
    pm = pytest.importorskip("papermill")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it: tiny tensors, shared cores
    src = NB_DIR / "02_attention_maps.ipynb"
    out = tmp_path / "02_executed.ipynb"
    pm.execute_notebook(str(src), str(out), parameters={"SIZE": 48, "FIT_STEPS": 3, "RUN_DIR": "nowhere"},
                        kernel_name="python3", cwd=str(NB_DIR), progress_bar=False, execution_timeout=300)
    nb = _load(out)
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and "SIZE = 48" in _source(injected[0])
    text = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                   for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"])
    assert "image 48x48" in text  # the notebook reports the size it really ran at
    assert "fitting A_1..A_4 to M for 3 steps" in text


def test_runner_writes_html_beside_each_executed_notebook(tmp_path, monkeypatch):
    """`make reproduce` leaves NAME.ipynb and NAME.html (nbconvert) side by side in the output folder; both
    parameter files ask for it, and --no-html / html: false turn it off."""
    pytest.importorskip("papermill")
    pytest.importorskip("nbconvert")
    import nbformat

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rn = _run_notebooks_module()
    src = tmp_path / "nb" / "99_tiny.ipynb"
    src.parent.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A tiny notebook"),
                                         nbformat.v4.new_code_cell("print('six times seven is', 6 * 7)")],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nbformat.write(nb, str(src))
    out = tmp_path / "executed"
    results = rn.run([(src, {}, 120)], out)
    assert results[0]["status"] == "ok", results
    html = out / "99_tiny.html"
    assert (out / "99_tiny.ipynb").is_file() and html.is_file() and results[0]["html"] == str(html)
    page = html.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html") and "A tiny notebook" in page
    assert "six times seven is 42" in page  # the executed output, not just the source
    assert json.loads((out / "summary.json").read_text())[0]["html"] == str(html)

    html.unlink()
    assert rn.run([(src, {}, 120)], out, html=False)[0]["html"] == "" and not html.exists()
    for name in ("cpu", "paper"):
        assert rn.load_params(ROOT / "params" / f"{name}.yaml")["html"] is True
    (tmp_path / "p.yaml").write_text("html: maybe\n")
    with pytest.raises(TypeError, match="html must be true or false"):
        rn.load_params(tmp_path / "p.yaml")


def test_runner_stops_a_notebook_only_when_it_makes_no_progress(tmp_path, monkeypatch):
    """`make reproduce` never cuts off a notebook that works (output, or files written under runs/), however
    long it takes; one that is silent for timeout_s is interrupted, and the message says how to go on."""
    pytest.importorskip("papermill")
    import nbformat

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rn = _run_notebooks_module()
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    busy = tmp_path / "nb" / "98_busy.ipynb"  # 12 s of work that prints every second: 3x the limit
    silent = tmp_path / "nb" / "99_silent.ipynb"
    busy.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import time\nfor i in range(12):\n    print('step', i, flush=True)\n    time.sleep(1)")],
        metadata=meta), str(busy))
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import time\ntime.sleep(120)\nprint('never')")], metadata=meta), str(silent))
    out = tmp_path / "executed"
    t0 = time.perf_counter()
    results = rn.run([(busy, {}, 4), (silent, {}, 4)], out, keep_going=True, html=False)
    assert [r["status"] for r in results] == ["ok", "stalled"], results
    assert results[0]["seconds"] >= 12
    assert "no progress for 4s" in results[1]["error"] and "run the same command again" in results[1]["error"]
    assert results[1]["seconds"] < 60 and time.perf_counter() - t0 < 100  # interrupted, not waited out


def test_colab_cells_run_the_kits_own_helper(tmp_path, monkeypatch):
    """Each Colab cell runs agan/colab.py as published at the repository URL that README.md names; the helper
    installs the checkout it finds (editable: a Drive copy's edits run), never a fixed pip package, and does
    nothing off Colab."""
    from agan import colab

    assert colab.RAW_URL.startswith(colab.REPO_URL.replace("github.com", "raw.githubusercontent.com"))
    assert colab.REPO_URL in (ROOT / "README.md").read_text(), "README.md must name the cells' repository"
    for path in NOTEBOOKS:
        cell = next(_source(c) for c in _load(path)["cells"] if "google.colab" in _source(c))
        assert f'exec(urlopen("{colab.RAW_URL}").read())' in cell, path.name
    helper = (ROOT / "agan" / "colab.py").read_text()
    tree = ast.parse(helper)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "glob", "importlib", "os", "subprocess", "sys", "pathlib", "google"}, \
        f"agan/colab.py runs before anything is installed: standard library only ({imported})"
    assert '"install", "-q", "-e", str(root)' in helper and "git+" not in helper
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert colab.setup("02_attention_maps.ipynb") is None  # off Colab: nothing done
    kit = tmp_path / "kit"
    (kit / "agan").mkdir(parents=True)
    (kit / "pyproject.toml").write_text("")
    (kit / "agan" / "__init__.py").write_text("")
    assert colab.find_checkout("x.ipynb", places=["", tmp_path, kit], drive=False) == kit
    assert colab.find_checkout("x.ipynb", places=[tmp_path], drive=False) is None


# ------------------------------------------------------------------------------------------ the model shown
MODEL_NOTEBOOKS = ["00_quickstart", "02_attention_maps", "03_autoencoder_and_losses", "08_explorer"]


@pytest.fixture
def kit_files(tmp_path, monkeypatch):
    """(a tiny kit checkpoint in a run folder, a release of it, a function that installs or removes the
    kit's default model): the packaged default is pointed at tmp_path, never at agan/weights."""
    import torch

    import agan.infer.shipped as infer_shipped
    from agan.checkpoint import atomic_save
    from agan.config import Config
    from agan.models import build_generator
    from agan.release import export_release

    cfg = Config.preset("cpu", width=0.125, steps=2)
    torch.manual_seed(0)
    ckpt = tmp_path / "run" / "checkpoints" / "generator.pt"
    ckpt.parent.mkdir(parents=True)
    atomic_save({"format": "agan-generator", "version": 1, "config": cfg.to_dict(), "step": 2,
                 "G": build_generator(cfg).state_dict()}, ckpt)
    shipped = export_release(ckpt, tmp_path / "weights", {})

    def install(yes: bool) -> None:
        monkeypatch.setattr(infer_shipped, "DEFAULT_WEIGHTS",
                            shipped if yes else tmp_path / "absent.safetensors")
    return ckpt, shipped, install


def test_resolve_weights_order(kit_files, tmp_path):
    """WEIGHTS (a file) -> the kit's default model -> only where that is not installed, RUN_DIR's run ->
    None."""
    from agan.infer.load import load_generator
    from agan.infer.shipped import resolve_weights

    ckpt, shipped, install = kit_files
    run_dir = ckpt.parent.parent
    own = tmp_path / "gen.pkl"
    own.write_bytes(b"")  # resolve_weights only picks the file; load_generator reads it
    install(True)
    assert resolve_weights(str(own), str(run_dir)) == (own, f"{own} (WEIGHTS)")
    assert resolve_weights(ckpt, None)[0] == ckpt  # a kit checkpoint or a release as WEIGHTS, too
    for weights in ("", None):  # not given: the default model wins over the run
        path, about = resolve_weights(weights, str(run_dir))
        assert path == shipped and about.startswith("the kit's default model") and "synthetic" in about
    assert load_generator(path, device="cpu").model.steps == 2
    with pytest.raises(FileNotFoundError, match="WEIGHTS 'nowhere.pt': no such file"):
        resolve_weights("nowhere.pt", str(run_dir))  # a typo is never silently replaced by the default
    install(False)
    path, about = resolve_weights("", str(run_dir))
    assert path == ckpt and "RUN_DIR" in about and "not installed" in about and "\n" not in about
    path, about = resolve_weights("", str(tmp_path / "no-run"))
    assert path is None and "not installed" in about and "no run at" in about and "\n" not in about
    assert resolve_weights(None, None) == (None, resolve_weights("", "")[1])
    assert resolve_weights(own, None)[0] == own  # WEIGHTS still works without the default


@pytest.mark.parametrize("name", MODEL_NOTEBOOKS)
def test_notebooks_choose_their_model_through_resolve_weights(name):
    """Each notebook declares WEIGHTS = "" and RUN_DIR, asks resolve_weights(WEIGHTS, RUN_DIR) once, prints
    which model it uses, and no longer builds a RUN_DIR checkpoint path itself."""
    path = NB_DIR / f"{name}.ipynb"
    rn = _run_notebooks_module()
    params = rn.notebook_parameters(path)
    assert params["WEIGHTS"] == "" and "RUN_DIR" in params
    code = [_source(c) for c in _load(path)["cells"] if c["cell_type"] == "code"]
    calls = [(i, node) for i, src in enumerate(code) for node in ast.walk(ast.parse(src))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "resolve_weights"]
    assert len(calls) == 1, f"{name}: expected one resolve_weights(...) call"
    i, call = calls[0]
    assert [a.id for a in call.args] == ["WEIGHTS", "RUN_DIR"] and not call.keywords
    assert "from agan.infer.shipped import resolve_weights" in code[i]
    assert "{about}" in code[i] and "print(" in code[i]  # the one line saying which weights are used
    assert not any('"checkpoints"' in src or "generator.pt" in src for src in code), \
        f"{name}: the model is chosen by agan.infer.shipped.resolve_weights, not by a path built here"
