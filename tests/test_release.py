"""The kit's own model in the box (fp16 safetensors + JSON sidecar): loading and the default weights of
derain() / agan derain / agan eval (agan.infer.shipped), export and the model card (agan.release: card fields
from a run's config.json and metrics.jsonl rows, agan.train.records), and scripts/export_release.py."""

import ast
import copy
import importlib.util
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

import agan.infer.shipped as shipped
import agan.release.card as release_card
from agan.checkpoint import CheckpointError, atomic_save
from agan.cli import main
from agan.config import Config
from agan.infer.load import load_generator
from agan.infer.pipeline import derain
from agan.infer.settings import DerainSettings
from agan.infer.shipped import load_release, sha256_file, sidecar_path
from agan.models import build_generator, count_parameters
from agan.release import MAX_BYTES, export_release, run_card_fields
from agan.train.records import done_row, run_row

ROOT = Path(__file__).resolve().parents[1]


def tiny_cfg(**kw):
    return Config.preset("cpu", **{"width": 0.125, "steps": 2, **kw})


def save_generator(path: Path, cfg: Config, seed: int = 0, step: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    G = build_generator(cfg).eval()
    atomic_save({"format": "agan-generator", "version": 1, "config": cfg.to_dict(), "step": step,
                 "G": G.state_dict()}, path)
    return G


def fp16_rounded(G: torch.nn.Module) -> torch.nn.Module:
    """G with every float weight cast to fp16 and back: what a release holds."""
    R = copy.deepcopy(G)
    with torch.no_grad():
        for t in R.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    return R.eval()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(release .safetensors path, the original G) of a tiny random-init model with derain_size 96."""
    d = tmp_path_factory.mktemp("release")
    G = save_generator(d / "generator.pt", tiny_cfg(derain_size=96))
    path = export_release(d / "generator.pt", d / "out", {"seed": 0, "note": "tiny"})
    return path, G


@pytest.fixture
def default_is(monkeypatch):
    """Point the packaged default at a path; the once-per-process notice re-armed."""
    def point(path):
        monkeypatch.setattr(shipped, "DEFAULT_WEIGHTS", Path(path))
        monkeypatch.setattr(shipped, "_announced", False)
    return point


# ---------------------------------------------------------------------------------------------- format
def test_export_writes_fp16_safetensors_and_sidecar(tiny):
    from safetensors import safe_open

    path, G = tiny
    assert path.name == "agan-synthetic.safetensors" and path.is_file()
    info = json.loads(sidecar_path(path).read_text())
    assert info["format"] == "agan-release" and info["weights"] == path.name
    assert info["sha256"] == sha256_file(path) and info["bytes"] == path.stat().st_size
    assert info["parameters"] == count_parameters(G) and info["dtype"] == "float16"
    assert Config.from_dict(info["config"]) == tiny_cfg(derain_size=96)
    # card fields + the checkpoint's step
    assert info["seed"] == 0 and info["note"] == "tiny" and info["step"] == 2
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(G.state_dict())
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
        assert Config.from_dict(json.loads(f.metadata()["config"])) == tiny_cfg(derain_size=96)


def test_load_release_equals_the_fp16_rounded_original(tiny):
    path, G = tiny
    R = fp16_rounded(G)
    for both in (load_release(path), load_generator(path, device="cpu")):
        loaded, settings = both
        assert type(both).__name__ == "Loaded" and both.model is loaded and both.settings is settings
        assert not loaded.training and loaded.steps == 2
        assert settings == DerainSettings.of(tiny_cfg(derain_size=96)) and settings.size == 96
        sd, ref = loaded.state_dict(), R.state_dict()
        assert all(sd[k].dtype == torch.float32 and torch.equal(sd[k], ref[k]) for k in ref)
        x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            a, b = loaded(x), R(x)
        assert torch.equal(a.O, b.O) and all(torch.equal(p, q) for p, q in zip(a.attention, b.attention))
    # the rounding is real but small: the release is not the fp32 original bit for bit
    assert any(not torch.equal(v, G.state_dict()[k]) for k, v in R.state_dict().items())


def test_export_refuses_to_overwrite(tmp_path):
    save_generator(tmp_path / "generator.pt", tiny_cfg())
    path = export_release(tmp_path / "generator.pt", tmp_path / "w", {})
    digest = sha256_file(path)
    save_generator(tmp_path / "generator.pt", tiny_cfg(), seed=1)  # different weights
    with pytest.raises(FileExistsError, match="overwrite"):
        export_release(tmp_path / "generator.pt", tmp_path / "w", {})
    assert sha256_file(path) == digest
    sidecar_path(path).unlink()  # the weights alone are enough to refuse
    with pytest.raises(FileExistsError):
        export_release(tmp_path / "generator.pt", tmp_path / "w", {})
    export_release(tmp_path / "generator.pt", tmp_path / "w", {}, overwrite=True)
    assert (sha256_file(path) != digest
            and json.loads(sidecar_path(path).read_text())["sha256"] == sha256_file(path))
    with pytest.raises(ValueError, match="sha256"):
        export_release(tmp_path / "generator.pt", tmp_path / "w2", {"sha256": "x"})  # reserved field


def test_export_takes_kit_checkpoints_only(tmp_path):
    atomic_save({"autoencoder.conv1.weight": torch.zeros(1)}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="not a kit checkpoint"):
        export_release(tmp_path / "bare.pt", tmp_path / "w", {})
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("where", ["header", "data"])
def test_checksum_mismatch_is_one_line_naming_the_file(tiny, tmp_path, where):
    path = tmp_path / tiny[0].name
    blob = bytearray(tiny[0].read_bytes())
    # a flipped header byte would make the file unreadable: the checksum must be checked first
    blob[12 if where == "header" else len(blob) - 3] ^= 0x01
    path.write_bytes(bytes(blob))
    sidecar_path(path).write_text(sidecar_path(tiny[0]).read_text())
    for load in (load_release, load_generator):
        with pytest.raises(CheckpointError) as e:
            load(path)
        msg = str(e.value)
        assert "\n" not in msg and str(path) in msg and "checksum does not match" in msg


def test_missing_sidecar_is_a_checkpoint_error(tiny, tmp_path):
    path = tmp_path / tiny[0].name
    path.write_bytes(tiny[0].read_bytes())
    with pytest.raises(CheckpointError, match="sidecar"):
        load_release(path)


def test_a_cpu_preset_release_is_well_under_15_mb(tmp_path):
    cfg = Config.preset("cpu")
    n = count_parameters(build_generator(cfg))
    assert 2 * n < 0.5 * MAX_BYTES  # fp16: 2 bytes a parameter (3.4 M parameters: 6.9 MB)
    save_generator(tmp_path / "generator.pt", cfg)
    path = export_release(tmp_path / "generator.pt", tmp_path / "w", {})
    assert 2 * n < path.stat().st_size < 2 * n + 64 * 1024 < MAX_BYTES  # + the header (names, config)


# ---------------------------------------------------------------------------------------------- defaults
def test_derain_without_weights_uses_the_default_once(tiny, default_is, capsys):
    path, _ = tiny
    default_is(path)
    img = np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    a, maps = derain(img, device="cpu")
    b, _ = derain(img, device="cpu")
    G, settings = load_release(path)
    ref, _ = derain(img, model=G, settings=settings)  # derain_size 96: runs reduced, change enlarged
    np.testing.assert_array_equal(a, ref)
    np.testing.assert_array_equal(b, ref)
    assert len(maps) == 2
    err = capsys.readouterr().err
    assert err.count("using the kit's default model") == 1 and "trained on synthetic drops only" in err
    assert err.count("\n") == 1


def test_cli_derain_without_weights_uses_the_default(tiny, default_is, tmp_path, capsys):
    from PIL import Image

    path, _ = tiny
    default_is(path)
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (33, 40, 3), dtype=np.uint8)).save(
        tmp_path / "a.png")
    assert main(["derain", str(tmp_path / "a.png"), "--out", str(tmp_path / "o1"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "using the kit's default model (" in err and "trained on synthetic drops only" in err
    assert main(["derain", str(tmp_path / "a.png"), "--out", str(tmp_path / "o2"), "--device", "cpu",
                 "--weights", str(path)]) == 0
    assert "default model" not in capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o1" / "a.png")),
                                  np.asarray(Image.open(tmp_path / "o2" / "a.png")))


def test_missing_default_is_one_clear_error(default_is, tmp_path, capsys):
    from PIL import Image

    default_is(tmp_path / "nowhere" / "agan-synthetic.safetensors")
    with pytest.raises(FileNotFoundError,
                       match=r"the kit's default model is not installed \(.*\): pass --weights"):
        shipped.default_weights()
    with pytest.raises(FileNotFoundError, match="not installed"):
        derain(np.zeros((8, 8, 3), np.uint8))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    for argv in (["derain", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")],
                 ["eval", "--data", str(tmp_path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "default model is not installed" in err and "--weights" in err
        assert err.startswith(f"agan {argv[0]}: error: ")


def test_cli_eval_data_alone_uses_the_default(tiny, default_is, tmp_path, capsys):
    from PIL import Image

    path, _ = tiny
    default_is(path)
    rng = np.random.default_rng(3)
    for sub in ("rain", "clean"):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
    clean = rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)
    Image.fromarray(clean).save(tmp_path / "pairs" / "clean" / "0_clean.png")
    Image.fromarray(np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)).save(
        tmp_path / "pairs" / "rain" / "0_rain.png")
    assert main(["eval", "--data", str(tmp_path / "pairs"), "--device", "cpu"]) == 0
    out = capsys.readouterr()
    assert "default model" in out.err and "PSNR" in out.out
    assert main(["eval", "--weights", str(path)]) == 2  # --weights still needs --data
    assert "go together" in capsys.readouterr().err


def test_derain_help_names_the_default(capsys):
    with pytest.raises(SystemExit):
        main(["derain", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "agan/weights/agan-synthetic.safetensors" in out


# ---------------------------------------------------------------------------------------------- export script
def _script():
    spec = importlib.util.spec_from_file_location("export_release", ROOT / "scripts" / "export_release.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fake_run(run: Path, done: bool = True) -> Config:
    """A run folder as agan train leaves it, without train.log: stopped at step 20 (10.5 s), resumed, done at
    step 40 (20 s) unless ``done`` is False (still running its second segment)."""
    cfg = tiny_cfg(iterations=40, seed=3, real_val="pairs/real", derain_size=128)
    (run / "checkpoints").mkdir(parents=True)
    cfg.save(run / "config.json")
    save_generator(run / "checkpoints" / "generator.pt", cfg, step=40)
    real_sets = {"pairs/real": [None] * 4}  # folder -> its pairs, as the trainer holds them
    rows = [run_row(0, "cpu", "bf16 autocast", real_sets),
            {"step": 0, "split": "val", "psnr": 8.0, "ssim": 0.1, "psnr_input": 23.0, "ssim_input": 0.8},
            done_row(20, 10.5, stopped=True),
            run_row(20, "cpu", "bf16 autocast", real_sets),
            {"step": 30, "split": "train", "L_G": 1.0},
            {"step": 40, "split": "val", "psnr": 24.25, "ssim": 0.8123, "psnr_input": 23.0,
             "ssim_input": 0.8},
            {"step": 40, "split": "real", "set": "real", "psnr": 18.5, "ssim": 0.7321, "psnr_input": 17.95,
             "ssim_input": 0.7204}]
    if done:
        rows.append(done_row(40, 20.0, stopped=False))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return cfg


def test_export_script_writes_release_json_and_card(tmp_path, capsys):
    cfg = fake_run(tmp_path / "run")
    (tmp_path / "fail.md").write_text("- reflections on wet roads are left as they are\n")
    out = tmp_path / "weights"
    script = _script()
    assert script.main([str(tmp_path / "run"), "--out", str(out), "--failures",
                        str(tmp_path / "fail.md")]) == 0
    info = json.loads((out / "agan-synthetic.json").read_text())
    assert info["iterations"] == 40 and info["seed"] == 3 and info["preset"] == "cpu"
    assert info["wall_time_s"] == 30.5 and info["wall_time_segments"] == 2  # stopped + resumed to the end
    assert info["trained_on"] == {"device": "cpu", "precision": "bf16 autocast"}
    assert info["machine"]["cpu"] and info["machine"]["platform"]
    assert (info["metrics"]["synthetic_val"]["psnr"] == 24.25
            and info["metrics"]["synthetic_val"]["step"] == 40)
    assert info["metrics"]["real"] == {"step": 40, "psnr": 18.5, "ssim": 0.7321, "psnr_input": 17.95,
                                       "ssim_input": 0.7204, "data": "pairs/real", "pairs": 4}
    assert Config.from_dict(info["config"]) == cfg
    card = (out / "MODEL_CARD.md").read_text()
    for section in ("## What it is", "## Data", "## Recipe", "## Measured", "## Known failure cases",
                    "## Licence"):
        assert section in card
    assert "Synthetic only" in card and "agan/assets/backgrounds" in card and "MIT" in card
    assert "| 23.00 | 24.25 | +1.25 | 0.8000 | 0.8123 |" in card  # synthetic held-out vs input
    assert "| 17.95 | 18.50 | +0.55 | 0.7204 | 0.7321 |" in card  # real pairs vs input
    assert "reflections on wet roads" in card and info["sha256"] in card and "128 px" in card
    assert load_release(out / "agan-synthetic.safetensors").settings.size == 128
    assert not (tmp_path / "run" / "train.log").exists()
    # the card's command rebuilds the run's config
    from agan.cli import build_parser
    from agan.cli.train import build_config

    line = next(ln for ln in card.splitlines() if ln.startswith("agan train "))
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert build_config(args)[0] == cfg
    capsys.readouterr()
    assert script.main([str(tmp_path / "run"), "--out", str(out)]) == 2  # no overwrite
    assert "exists" in capsys.readouterr().err
    assert script.main([str(tmp_path / "run"), "--out", str(out), "--overwrite"]) == 0
    assert "see the README" in (out / "MODEL_CARD.md").read_text().replace("See", "see")  # default section


def test_export_script_refuses_an_unfinished_run(tmp_path, capsys):
    fake_run(tmp_path / "run", done=False)
    assert _script().main([str(tmp_path / "run"), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "no 'done' row" in err and "--resume" in err and err.count("\n") == 1
    assert not (tmp_path / "w").exists()


def _run_folder(run: Path, rows: list[dict], **cfg) -> Config:
    cfg = tiny_cfg(iterations=40, **cfg)
    run.mkdir(parents=True)
    cfg.save(run / "config.json")
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return cfg


def test_card_fields_are_read_from_the_metrics_rows(tmp_path):
    """Wall time, iterations, device, precision and the real pairs' count come from metrics.jsonl's "run" and
    "done" rows (no train.log in the folder); the scores from the card's set of real pairs (the first)."""
    start = {"split": "run", "device": "cuda:0", "processes": 2, "precision": "bf16 autocast",
             "real_pairs": {"a": 4, "b": 7}}
    scores = {"psnr": 18.5, "ssim": 0.73, "psnr_input": 17.9, "ssim_input": 0.72}
    rows = [{"step": 0, **start},
            {"step": 20, "split": "done", "seconds": 10.5, "stopped": True},
            {"step": 20, **start},
            {"step": 40, "split": "val", "psnr": 24.0, "ssim": 0.8, "psnr_input": 23.0, "ssim_input": 0.7},
            {"step": 40, "split": "real", "set": "a", **scores},
            {"step": 40, "split": "real", "set": "b", **{**scores, "psnr": 99.0}},
            {"step": 40, "split": "done", "seconds": 20.0, "stopped": False}]
    _run_folder(tmp_path / "run", rows, real_val=("pairs/a", "pairs/b"))
    f = run_card_fields(tmp_path / "run")
    assert f["iterations"] == 40 and f["wall_time_s"] == 30.5 and f["wall_time_segments"] == 2
    assert f["trained_on"] == {"device": "cuda:0 x2 processes", "precision": "bf16 autocast"}
    assert f["metrics"]["real"] == {"step": 40, **scores, "data": "pairs/a", "pairs": 4}
    assert f["metrics"]["synthetic_val"]["psnr"] == 24.0 and not (tmp_path / "run" / "train.log").exists()
    # the helpers the training loop writes them with make the same rows
    real_sets = {"x/a": [0] * 4, "y/b": [0] * 7}  # folder -> its pairs, as the trainer holds them
    assert run_row(20, "cuda:0", "bf16 autocast", real_sets, 2) == {"step": 20, **start}
    assert done_row(40, 20.0, False) == rows[-1]
    assert run_row(0, "cpu", torch.bfloat16)["precision"] == "bf16 autocast"  # GanStep.amp as it is
    assert run_row(0, "cpu", None)["precision"] == "fp32"


def test_old_runs_without_the_rows_are_one_clear_error(tmp_path):
    val = {"step": 40, "split": "val", "psnr": 24.0, "ssim": 0.8, "psnr_input": 23.0, "ssim_input": 0.7}
    _run_folder(tmp_path / "old", [val])  # a run from before the rows: only its scores
    (tmp_path / "old" / "train.log").write_text("done: step 40 in 20.0 s\n")  # not read
    with pytest.raises(ValueError, match=r"metrics.jsonl: no 'done' row .*train.log is not read") as e:
        run_card_fields(tmp_path / "old")
    assert "\n" not in str(e.value)
    _run_folder(tmp_path / "stopped", [run_row(0, "cpu", "fp32"), done_row(20, 1.0, stopped=True), val])
    with pytest.raises(ValueError, match=r"no 'done' row .*--resume"):
        run_card_fields(tmp_path / "stopped")
    # no "run" row: device and precision from config.json when it names both, else an error naming the row
    done = done_row(40, 20.0, stopped=False)
    _run_folder(tmp_path / "auto", [val, done])
    with pytest.raises(ValueError, match=r"no 'run' row \(device, precision\) and config.json says device "
                                         r"'auto'") as e:
        run_card_fields(tmp_path / "auto")
    assert "\n" not in str(e.value)
    _run_folder(tmp_path / "named", [val, done], device="cpu", precision="bf16")
    f = run_card_fields(tmp_path / "named")
    assert f["trained_on"] == {"device": "cpu", "precision": "bf16 autocast"} and f["iterations"] == 40


class _Pairs(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        clean = torch.rand(3, 32, 32, generator=g)
        rain = (clean + 0.3 * (torch.rand(1, 32, 32, generator=g) > 0.9)).clamp(0, 1)
        mask = (rain - clean).abs().amax(0, keepdim=True)
        return {"rain": rain, "clean": clean, "mask": mask, "id": str(i)}


def test_a_trained_run_has_the_rows_the_card_reads(tmp_path):
    """agan.train writes the "run" / "done" rows (agan.train.records) that run_card_fields reads: two
    segments, the second resumed."""
    from agan.images import write_image
    from agan.train import train

    clean = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    write_image(tmp_path / "real" / "rain" / "0_rain.png", np.clip(clean.astype(int) + 30, 0, 255)
                .astype(np.uint8))
    write_image(tmp_path / "real" / "clean" / "0_clean.png", clean)
    cfg = tiny_cfg(iterations=2, crop_size=32, batch_size=2, disc_width=0.25, disc_pool=2, log_every=1,
                   val_every=1, val_size=2, ckpt_every=1, sample_every=0, device="cpu",
                   real_val=str(tmp_path / "real"))
    kw = {"progress": False, "train_set": _Pairs(), "val_set": _Pairs()}
    train(cfg.replace(iterations=1), tmp_path / "run", **kw)
    res = train(cfg, tmp_path / "run", resume=True, **kw)
    f = run_card_fields(tmp_path / "run")
    assert f["iterations"] == 2 and f["wall_time_segments"] == 2
    assert 0 < f["wall_time_s"] <= res.wall_time * 2 + 60
    assert f["trained_on"]["device"] == "cpu" and f["trained_on"]["precision"] in ("fp32", "bf16 autocast")
    assert f["metrics"]["real"]["pairs"] == 1 and f["metrics"]["real"]["step"] == 2


def _agan_imports(module: str, packages: bool) -> set[str]:
    """The agan modules ``module`` imports, at its top or inside functions (``packages``: with the packages
    each import runs the ``__init__`` of)."""
    def source(name):
        p = ROOT.joinpath(*name.split("."))
        return p.with_suffix(".py") if p.with_suffix(".py").is_file() else p / "__init__.py"

    found = set()
    for node in ast.walk(ast.parse(source(module).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    out = set()
    for name in (f for f in found if f.split(".")[0] == "agan"):
        parts = name.split(".")
        for k in range(1 if packages else len(parts), len(parts) + 1):
            if source(".".join(parts[:k])).is_file():
                out.add(".".join(parts[:k]))
    return out


def _reachable(*modules: str, packages: bool = True) -> set[str]:
    seen, todo = set(), [m for start in modules for m in _agan_imports(start, packages)]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += _agan_imports(m, packages)
    return seen


def test_release_tooling_imports_nothing_of_agan_accel():
    """Export, the model card and the shipped model run the plain inference path: nothing they import, at the
    top or inside a function, directly or through another module, is agan.accel. And no import circles:
    shipped sits below load and pipeline (load imports it)."""
    mine = ("agan.release", "agan.release.export", "agan.release.card", "agan.infer.shipped",
            "agan.train.records")
    assert {m for m in _reachable(*mine) if m.startswith("agan.accel")} == set()
    for m in mine:
        assert m not in _reachable(m, packages=False), f"{m} imports itself through others"
    below = _reachable("agan.infer.shipped", packages=False)
    assert not below & {"agan.infer.load", "agan.infer.pipeline", "agan.infer.batch", "agan.release"}
    assert _agan_imports("agan.train.records", packages=False) == set()  # the loop's helper: stdlib only


def test_reproduce_command_quotes_json_like_strings():
    cfg = tiny_cfg(data="1e-3", synth={"view": [0.3, 0.6]})
    cmd = release_card.reproduce_command(cfg)
    from agan.cli import build_parser
    from agan.cli.train import build_config

    assert build_config(build_parser().parse_args(shlex.split(cmd)[1:]))[0] == cfg


def test_the_shipped_model_cards_synthetic_numbers_reproduce():
    """The card's synthetic scores (MODEL_CARD.md, agan-synthetic.json 'measured') come from this code: the
    first two frames, measured again on the installed file, give the same per-image PSNR / SSIM."""
    import json

    from agan.infer.shipped import default_weights, sidecar_path
    from agan.release.card import measure_release

    try:
        weights = default_weights()
    except FileNotFoundError:
        pytest.skip("the kit's default model is not installed")
    card = json.loads(sidecar_path(weights).read_text())["measured"]["synthetic"]
    again = measure_release(weights, n_synthetic=2, progress=False)["synthetic"]
    for got, want in zip(again["per_image"], card["per_image"][:2]):
        assert got == pytest.approx(want, abs=0.02)  # fp32; different CPUs round differently by ~1e-3 dB
    assert card["psnr"] > card["psnr_input"] and card["ssim"] > card["ssim_input"]


@pytest.mark.slow
def test_gpu_release_script_smoke_run_on_the_cpu(tmp_path):
    """scripts/gpu_release.sh, the one call for a lent GPU, with tiny settings on the CPU: it trains (with
    both sets of real pairs as --real-val), scores each set and the drop-free photos, and exports the release
    into OUT/release, never into agan/weights; a second call resumes the finished run and exports again."""
    import subprocess
    import sys

    from agan.images import write_image

    rng = np.random.default_rng(0)
    for name in ("train_pairs", "val_pairs"):
        clean = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
        write_image(tmp_path / "real" / name / "rain" / "0_rain.png", np.clip(clean.astype(int) + 30, 0, 255)
                    .astype(np.uint8))
        write_image(tmp_path / "real" / name / "clean" / "0_clean.png", clean)
    root = Path(__file__).resolve().parents[1]
    before = {p: p.stat().st_mtime for p in (root / "agan" / "weights").iterdir()}
    env = {**__import__("os").environ, "PYTHON": sys.executable, "PRESET": "cpu", "ITERATIONS": "2",
           "SETS": "width=0.125 arn_width=0.125 crop_size=32 batch_size=2 val_every=2 val_size=2 "
                   "sample_every=0 ckpt_every=1 derain_size=32",
           "REAL": str(tmp_path / "real"), "MEASURE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    run = subprocess.run(["bash", str(root / "scripts" / "gpu_release.sh"), str(out)], env=env,
                         capture_output=True, text=True, timeout=600)
    text = run.stdout + run.stderr
    assert run.returncode == 0, text
    assert "--real-val" in text and "train_pairs" in text and "val_pairs" in text
    assert (out / "run" / "checkpoints" / "generator.pt").is_file()
    assert "photos never trained on:" in text
    release = out / "release"
    assert (release / "agan-synthetic.safetensors").is_file() and (release / "MODEL_CARD.md").is_file()
    sets = {json.loads(r).get("set") for r in (out / "run" / "metrics.jsonl").read_text().splitlines()
            if json.loads(r).get("split") == "real"}
    assert sets == {"train_pairs", "val_pairs"}
    again = subprocess.run(["bash", str(root / "scripts" / "gpu_release.sh"), str(out)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "--resume" in again.stdout, again.stdout + again.stderr
    assert {p: p.stat().st_mtime for p in (root / "agan" / "weights").iterdir()} == before


def test_the_shipped_model_returns_a_drop_free_photo_as_it_was():
    """Do no harm: a photo without a single drop, never trained on (matplotlib's public-domain
    grace_hopper.jpg), comes back >= 40 dB against itself (the authors' protocol, Y) with its mean Y within 1
    grey level, derained as agan derain does it (the release's own size, smooth and blend; fp32). The real
    pairs' clean shots are scored by benchmarks/bench_clean.py and ../shared/tools/real_check.py
    (docs/real_photos.md)."""
    import matplotlib.cbook

    from agan.evaluation.protocol import score_pair
    from agan.images import read_image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photo = read_image(f.name)
    out, _ = derain(photo, precision="fp32")
    psnr, _ = score_pair(out, photo)
    luma = np.array([0.299, 0.587, 0.114])
    shift = float((out.astype(float) @ luma).mean() - (photo.astype(float) @ luma).mean())
    assert psnr >= 40 and abs(shift) <= 1, f"grace_hopper.jpg: {psnr:.2f} dB, mean Y {shift:+.2f}"
