"""Reliability and security (issue 8): bad inputs, crashes and untrusted checkpoints lose nothing.

One test (or parametrised group) per bullet of the issue; every fixture is generated here (no binary
blobs). End-to-end checks run the real command line in a subprocess (``python -m agan ...``):
    images       agan derain on odd files: one correct output or one error line naming the file each,
                 the batch goes on, a summary, exit status 1 when anything failed
    datasets     agan train --data DIR with broken folders fails before the first step, naming the files
    checkpoints  weights_only everywhere; pickled code refused (derain --weights, train --resume) and
                 never executed; truncated files; legacy (non-zip) files; atomic saving
    crashes      SIGTERM, SIGINT and kill -9 during agan train, resumed to a bit-identical end state
    numerics     NaN / inf in a loss or a gradient stops training naming the term and step
    outputs      never over an input, never over an output without --overwrite, atomic writes
Tiny models (width 0.125, N = 2) keep the whole file to about a minute on 2 CPU cores.
"""

from __future__ import annotations

import ast
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from agan.checkpoint import CheckpointError, atomic_save, atomic_write_text, safe_load
from agan.cli import main
from agan.config import Config
from agan.images import difference_mask, read_image, write_image
from agan.infer.load import load_generator
from agan.infer.pipeline import derain
from agan.models import build_generator
from tests.conftest import assert_same_training_state

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
       "AGAN_DEBUG": "", "PYTHONIOENCODING": "utf-8"}


def agan(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """``python -m agan ARGS`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "agan", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout, check=False)


def small_cfg(**kw) -> Config:
    # G's output applied as it is (the paper's O): these tests compare agan derain with the plain network
    return Config.preset("cpu", **{"width": 0.125, "steps": 2, "derain_size": 0, "derain_smooth": 0.0,
                                   "derain_blend": "none", **kw})


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = small_cfg()
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    atomic_save({"format": "agan-generator", "config": cfg.to_dict(), "G": build_generator(cfg).state_dict(),
                 "step": 1}, path)
    return path


@pytest.fixture(scope="module")
def G(weights):
    return load_generator(weights, "cpu").model


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image with some texture (HxWx3 uint8)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 200 / max(w, 1), y * 200 / max(h, 1), (x + y) * 100 / max(h + w, 1)], -1)
    return np.clip(base + rng.integers(0, 55, (h, w, 3)), 0, 255).astype(np.uint8)


def expected(G, image: np.ndarray, **kw) -> np.ndarray:
    """What ``agan derain --precision fp32`` writes for ``image``: derain() with the command's forward
    (agan.accel's fp32 path; uint8 in -> uint8 out)."""
    from agan.accel import pick_forward

    return derain(image, model=G, device="cpu", forward=pick_forward(G, "fp32", "cpu"), **kw)[0]


def max_diff(a, b) -> int:
    return int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


# =============================================================================================== images
def make_odd_images(d: Path) -> dict[str, dict]:
    """Write one file per odd case into ``d``; return name -> {rgb: expected network input, alpha,
    lossy}; files that must fail map to {"error": pattern}."""
    d.mkdir(parents=True)
    cases: dict[str, dict] = {}
    base = rgb(20, 30, 1)

    grey = base[..., 0]
    Image.fromarray(grey).save(d / "grey.png")
    cases["grey.png"] = {"rgb": np.repeat(grey[..., None], 3, axis=2)}

    alpha = np.tile(np.linspace(0, 255, 30).astype(np.uint8), (20, 1))
    Image.fromarray(np.dstack([base, alpha]), "RGBA").save(d / "rgba.png")
    cases["rgba.png"] = {"rgb": base, "alpha": alpha}
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(d / "grey_alpha.png")
    cases["grey_alpha.png"] = {"rgb": np.repeat(grey[..., None], 3, axis=2), "alpha": alpha}

    pal = Image.fromarray(base).quantize(16)
    pal.save(d / "palette.png")
    cases["palette.png"] = {"rgb": np.asarray(pal.convert("RGB"))}
    idx = np.asarray(pal)
    pal.save(d / "palette_transparent.png", transparency=int(idx[0, 0]))
    cases["palette_transparent.png"] = {"rgb": np.asarray(pal.convert("RGB")),
                                        "alpha": np.where(idx == idx[0, 0], 0, 255).astype(np.uint8)}

    g16 = (grey.astype(np.uint16) * 257
           + np.random.default_rng(2).integers(0, 128, grey.shape).astype(np.uint16))
    im16 = Image.fromarray(g16)
    assert im16.mode.startswith("I;16")
    im16.save(d / "deep16.png")
    cases["deep16.png"] = {"rgb": np.repeat(grey[..., None], 3, axis=2)}  # 16 bits -> the same 8 bits

    Image.fromarray(base).convert("CMYK").save(d / "cmyk.jpg", quality=100)
    with Image.open(d / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
        cases["cmyk.jpg"] = {"rgb": np.asarray(im.convert("RGB")), "lossy": True}

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: shown rotated 90 degrees clockwise
    Image.fromarray(base).save(d / "rotated.jpg", exif=exif, quality=100)
    with Image.open(d / "rotated.jpg") as im:
        stored = np.asarray(im.convert("RGB"))  # (20, 30, 3) as stored
    cases["rotated.jpg"] = {"rgb": np.ascontiguousarray(np.rot90(stored, k=-1)), "lossy": True}  # (30, 20, 3)

    for h, w in ((1, 1), (2, 3), (3, 1), (5, 5), (481, 719)):  # tiny and odd sizes
        img = rgb(h, w, h * 1000 + w)
        Image.fromarray(img).save(d / f"size_{h}x{w}.png")
        cases[f"size_{h}x{w}.png"] = {"rgb": img}
    img = rgb(9, 13, 7)
    Image.fromarray(img).save(d / "gouttes de pluie – été 雨.png")  # spaces and non-ASCII
    cases["gouttes de pluie – été 雨.png"] = {"rgb": img}

    good = (d / "size_5x5.png").read_bytes()
    full = (d / "rgba.png").read_bytes()
    (d / "truncated.png").write_bytes(full[: len(full) // 2])
    cases["truncated.png"] = {"error": "unreadable image"}
    (d / "notes.png").write_text("this is not an image\n")
    cases["notes.png"] = {"error": "not an image file"}
    (d / "empty.jpg").write_bytes(b"")
    cases["empty.jpg"] = {"error": "not an image file"}
    (d / "garbage.tif").write_bytes(good[:8] + bytes(range(256)) * 4)  # PNG signature, garbage after
    cases["garbage.tif"] = {"error": "unreadable image|not an image file"}
    return cases


def test_derain_batch_of_odd_images(tmp_path, weights, G):
    """Grey, RGBA, grey+alpha, palette (+ transparency), 16-bit, CMYK, EXIF-rotated, 1x1 .. 481x719,
    spaces and non-ASCII names -> correct outputs; truncated, non-image, empty, garbage files -> one
    error line each naming the file; the batch goes on, ends with a summary, exit status 1."""
    d = tmp_path / "in"
    cases = make_odd_images(d)
    extra = tmp_path / "readme.txt"  # a non-image given by name
    extra.write_text("hello")
    out = tmp_path / "out"
    # --precision fp32: outputs are compared with the exact (fp32) path below; `auto` is tested in test_infer
    p = agan("derain", d, extra, "--out", out, "--weights", weights, "--device", "cpu", "--precision", "fp32")
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    bad = [n for n, c in cases.items() if "error" in c] + ["readme.txt"]
    good = [n for n, c in cases.items() if "error" not in c]
    assert f"derained {len(good)} of {len(cases) + 1} image(s)" in p.stdout
    assert f"{len(bad)} failed:" in p.stderr
    fail_lines = [ln for ln in p.stderr.splitlines() if ln.startswith("agan derain: failed: ")]
    assert len(fail_lines) == len(bad)  # one line per bad file
    for name in bad:
        mine = [ln for ln in fail_lines if name in ln]
        assert len(mine) == 1, (name, fail_lines)
        if name in cases:
            assert re.search(cases[name]["error"], mine[0]), mine[0]
        assert not (out / name).exists()
    for name in good:
        case = cases[name]
        with Image.open(out / name) as im:
            assert im.format == ("JPEG" if name.endswith(".jpg") else "PNG")
            got = np.asarray(im)
        h, w = case["rgb"].shape[:2]
        want = expected(G, case["rgb"])
        if "alpha" in case:  # alpha kept aside and restored; the network saw only the colour
            assert got.shape == (h, w, 4), name
            np.testing.assert_array_equal(got[..., 3], case["alpha"])
            got = got[..., :3]
        assert got.shape == (h, w, 3), name  # same size (and orientation) as the input as displayed
        if case.get("lossy"):
            assert psnr(got, want) > 35, name  # JPEG output (quality 95)
        else:
            assert max_diff(got, want) <= 1, name  # same network in another process: at most 1 level
    # a clean batch exits 0
    p = agan("derain", d / "size_1x1.png", d / "gouttes de pluie – été 雨.png", "--out", tmp_path / "o2",
             "--weights", weights, "--device", "cpu")
    assert p.returncode == 0 and "derained 2 of 2" in p.stdout and not p.stderr.count("failed")
    assert (tmp_path / "o2" / "gouttes de pluie – été 雨.png").is_file()


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 2), (5, 5), (1, 7), (6, 1)])
def test_tiny_images_are_padded_not_rejected(G, size):
    """Reflect padding cannot pad more than size - 1 pixels: tiny images are replicate-padded."""
    from agan.accel import pick_forward

    img = rgb(*size, seed=sum(size))
    out, maps = derain(img, model=G, device="cpu")
    assert out.shape == img.shape and out.dtype == np.uint8
    assert len(maps) == 2 and all(m.shape == size for m in maps)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    (h, w), ph, pw = size, -size[0] % 4, -size[1] % 4
    mode = "reflect" if h > ph and w > pw else "replicate"  # reflect needs pad < size
    with torch.inference_mode():
        ref = G(torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)).O[..., :h, :w]  # plain forward
    raw, _ = derain(img.astype(np.float32) / 255, model=G, device="cpu", clip=False)  # G's own forward
    np.testing.assert_allclose(raw, ref[0].permute(1, 2, 0).numpy(), rtol=0, atol=1e-6)
    fast, _ = derain(img.astype(np.float32) / 255, model=G, device="cpu", clip=False,
                     forward=pick_forward(G, "fp32", "cpu"))  # agan derain's forward
    # atol: agan.accel.fast's bound
    np.testing.assert_allclose(fast, ref[0].permute(1, 2, 0).numpy(), rtol=0, atol=1e-4)


def test_very_large_images_are_tiled(tmp_path, weights, G, monkeypatch, capsys):
    """Above AUTO_TILE_PIXELS the CLI runs overlapping tiles (shrunk here to keep the test fast); an
    image over Pillow's decompression-bomb limit is refused with one line naming it."""
    from agan.infer import pipeline as infer

    monkeypatch.setattr(infer, "AUTO_TILE_PIXELS", 64 * 64)
    monkeypatch.setattr(infer, "AUTO_TILE", 96)
    calls = []
    run_padded = infer._run_padded
    monkeypatch.setattr(infer, "_run_padded",
                        lambda m, x, *a: calls.append(tuple(x.shape[-2:])) or run_padded(m, x, *a))
    d = tmp_path / "in"
    d.mkdir()
    big = rgb(150, 203, 5)
    Image.fromarray(big).save(d / "big.png")
    rc = main(["derain", str(d / "big.png"), "--out", str(tmp_path / "out"), "--weights", str(weights),
               "--device", "cpu", "--precision", "fp32"])  # compared bit for bit with the fp32 tiled path
    assert rc == 0
    assert len(calls) == 2 * 3 and max(max(c) for c in calls) < 96 + 4  # 2 x 3 tiles of about 96 x 96
    got = np.asarray(Image.open(tmp_path / "out" / "big.png"))
    calls.clear()
    assert max_diff(got, expected(G, big, tile=96, overlap=32)) == 0 and len(calls) == 6
    assert psnr(got, expected(G, big, tile=0)) > 30  # blended seams stay close to the untiled output

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)
    d2 = tmp_path / "in2"
    d2.mkdir()
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(d2 / "bomb.png")  # > 2x the limit: a "bomb"
    Image.fromarray(rgb(7, 9)).save(d2 / "small.png")
    rc = main(["derain", str(d2), "--out", str(tmp_path / "out2"), "--weights", str(weights),
               "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and "1 failed" in err and "bomb.png: image too large" in err
    assert (tmp_path / "out2" / "small.png").is_file()  # the batch went on


# ============================================================================================= datasets
def make_pairs(root: Path, ids=(1, 2, 3), size=(40, 40)) -> Path:
    for sub in ("data", "gt"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in ids:
        clean = rgb(*size, seed=i)
        rain = clean.copy()
        rain[5:12, 5:12] = 240
        Image.fromarray(rain).save(root / "data" / f"{i}_rain.png")
        Image.fromarray(clean).save(root / "gt" / f"{i}_clean.png")
    return root


def _break(kind: str, root: Path) -> list[str]:
    """Damage a dataset folder; return the names the error must mention."""
    if kind == "missing partner":
        (root / "gt" / "2_clean.png").unlink()
        return ["2_rain.png", "2_clean.png"]
    if kind == "mismatched sizes":
        Image.fromarray(rgb(40, 44)).save(root / "gt" / "3_clean.png")
        return ["3_rain.png", "3_clean.png", "sizes differ"]
    if kind == "duplicated id":
        Image.fromarray(rgb(40, 40)).save(root / "data" / "01_rain.jpg")
        return ["1_rain.png", "01_rain.jpg", "duplicated id 1"]
    if kind == "empty folders":
        for f in [*(root / "data").iterdir(), *(root / "gt").iterdir()]:
            f.unlink()
        return [str(root), "no images"]
    if kind == "not an image":
        (root / "gt" / "1_clean.png").write_text("oops")
        return ["1_clean.png", "unreadable"]
    raise AssertionError(kind)


TRAIN_TINY = ["--set", "width=0.125", "--set", "steps=2", "--set", "crop_size=32", "--set", "batch_size=2",
              "--set", "disc_width=0.25", "--set", "disc_pool=2", "--set", 'vgg_layers=["relu1_1","relu1_2"]',
              "--set", "val_every=0", "--set", "sample_every=0", "--set", "log_every=1",
              "--preset", "cpu", "--device", "cpu", "--no-progress", "--seed", "3"]


@pytest.mark.parametrize("kind", ["missing partner", "mismatched sizes", "duplicated id", "empty folders",
                                  "not an image"])
def test_broken_dataset_fails_before_training(tmp_path, kind, capsys):
    root = make_pairs(tmp_path / "ds")
    must = _break(kind, root)
    out = tmp_path / "run"
    rc = main(["train", "--data", str(root), "--out", str(out), "--iterations", "2", *TRAIN_TINY])
    err = capsys.readouterr().err
    assert rc == 2
    line = [ln for ln in err.splitlines() if ln.startswith("agan train: error:")]
    assert len(line) == 1, err
    for m in must:
        assert m in line[0], (m, line[0])
    # nothing was trained or saved, and the run directory was not even created (rerun without --overwrite)
    assert not out.exists()


def test_broken_dataset_cli_exit_status(tmp_path):
    root = make_pairs(tmp_path / "ds")
    _break("missing partner", root)
    p = agan("train", "--data", root, "--out", tmp_path / "run", "--iterations", "2", *TRAIN_TINY)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert re.search(r"agan train: error: .*2_rain\.png: no partner .*2_clean\.png", p.stderr)
    assert "step 1" not in p.stderr and not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


# ========================================================================================== checkpoints
def test_every_torch_load_is_weights_only():
    """Static check of the package: torch.load always with weights_only=True; no pickle.load(s),
    numpy allow_pickle=True or torch.hub.load."""
    offenders = []
    for path in sorted((ROOT / "agan").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            kws = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(ROOT)}:{node.lineno} {name}"
            if name.endswith("torch.load"):
                wo = kws.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    offenders.append(where)
            if name in ("pickle.load", "pickle.loads", "torch.hub.load", "dill.load", "joblib.load"):
                offenders.append(where)
            ap = kws.get("allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                offenders.append(where)
    assert offenders == []
    # and the one place that loads uses it
    src = (ROOT / "agan" / "checkpoint.py").read_text()
    assert "weights_only=True" in src


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _evil(path: Path, marker: Path, legacy: bool = False, **extra) -> Path:
    torch.save({"format": "agan-checkpoint", "G": {"w": torch.zeros(2)}, "payload": _Payload(marker),
                **extra}, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True])
def test_pickled_code_is_refused_by_safe_load(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = _evil(tmp_path / "evil.pt", marker, legacy)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused: .*nothing was executed"):
        safe_load(path)
    with pytest.raises(CheckpointError, match="refused"):
        load_generator(path, "cpu")
    assert not marker.exists()


def test_pickled_code_is_refused_by_derain_and_train_resume(tmp_path, capsys):
    marker = tmp_path / "pwned"
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rgb(8, 8)).save(d / "a.png")
    evil = _evil(tmp_path / "evil.pt", marker)
    p = agan("derain", d, "--out", tmp_path / "out", "--weights", evil, "--device", "cpu")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert re.search(r"agan derain: error: .*evil\.pt: refused: the file contains pickled code", p.stderr)
    assert not marker.exists() and not (tmp_path / "out" / "a.png").exists()

    # a run directory whose last.pt was replaced by a malicious file
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    small_cfg().save(run / "config.json")
    _evil(run / "checkpoints" / "last.pt", marker, config=small_cfg().to_dict(), step=1)
    rc = main(["train", "--out", str(run), "--resume", "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(r"last\.pt: refused: .*nothing was executed", err)
    assert not marker.exists()


def test_truncated_checkpoint_clear_error(tmp_path, weights, capsys):
    data = weights.read_bytes()
    bad = tmp_path / "cut.pt"
    bad.write_bytes(data[: len(data) // 2])
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rgb(8, 8)).save(d / "a.png")
    rc = main(["derain", str(d), "--out", str(tmp_path / "out"), "--weights", str(bad), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(r"agan derain: error: .*cut\.pt: not a readable PyTorch checkpoint", err)
    assert len(err.strip().splitlines()) == 1
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    small_cfg().save(run / "config.json")
    (run / "checkpoints" / "last.pt").write_bytes(data[:1000])
    rc = main(["train", "--out", str(run), "--resume", "--device", "cpu", "--no-progress"])
    assert rc == 2 and "last.pt: not a readable PyTorch checkpoint" in capsys.readouterr().err


def test_legacy_format_files_still_load(tmp_path, G):
    """Files in the pre-1.6 (non-zip) serialisation, like the authors' gen.pkl, load through the same
    weights-only unpickler: their layout, and a kit checkpoint saved that way."""
    from agan.models.authors import export_authors_state_dict
    from agan.models.generator import Generator

    torch.manual_seed(1)
    full = Generator().eval()
    authors = tmp_path / "gen.pkl"
    torch.save(export_authors_state_dict(full.state_dict()), authors, _use_new_zipfile_serialization=False)
    with open(authors, "rb") as f:
        assert f.read(2) == b"\x80\x02"  # a bare pickle (protocol 2), not a zip archive
    loaded, _ = load_generator(authors, "cpu")
    for k, v in full.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    kit = tmp_path / "kit_legacy.pt"
    torch.save({"format": "agan-generator", "config": small_cfg().to_dict(), "G": G.state_dict()}, kit,
               _use_new_zipfile_serialization=False)
    img = rgb(6, 10)
    np.testing.assert_array_equal(derain(img, weights=kit, device="cpu")[0],
                                  derain(img, model=G, device="cpu")[0])


def test_atomic_save_is_temp_fsync_rename(tmp_path, monkeypatch):
    """Order of operations: write a temp file in the same folder, fsync it, rename over the target,
    fsync the folder; a crash before the rename leaves the previous file and no temp file."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync",
                       os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "last.pt"
    atomic_save({"step": 1, "w": torch.ones(3)}, target)
    kinds = [e[0] for e in events]
    assert kinds == ["fsync", "replace", "fsync"]
    tmp = events[1][1]
    assert Path(tmp).parent == tmp_path and tmp != str(target) and events[1][2] == str(target)
    if isinstance(events[0][1], str):
        assert events[0][1] == tmp and events[2][1] == str(tmp_path)  # the file, then its folder
    assert safe_load(target)["step"] == 1

    def crash(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        atomic_save({"step": 2, "w": torch.zeros(3)}, target)
    assert safe_load(target)["step"] == 1 and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


# ========================================================================================= crash safety
class _Proc:
    """``python -m agan train`` in the background (output to files: a full pipe would block it)."""

    count = 0

    def __init__(self, out: Path, *args):
        _Proc.count += 1
        self.log = out.parent / f"proc{_Proc.count}.txt"
        self.f = open(self.log, "w+")  # noqa: SIM115
        self.p = subprocess.Popen([sys.executable, "-m", "agan", "train", "--out", str(out), *TRAIN_TINY,
                                   *map(str, args)], env={**ENV, "OMP_NUM_THREADS": "1"},
                                  stdout=subprocess.DEVNULL, stderr=self.f, text=True)

    def wait_for(self, cond, what: str, timeout: float = 240.0) -> None:
        t0 = time.monotonic()
        while not cond():
            if self.p.poll() is not None:
                raise AssertionError(f"training ended (status {self.p.returncode}) before {what}: "
                                     f"{self.log.read_text()[-2000:]}")
            if time.monotonic() - t0 > timeout:
                self.p.kill()
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.01)

    def finish(self, timeout: float = 240.0) -> tuple[int, str, str]:
        self.p.wait(timeout=timeout)
        self.f.close()
        return self.p.returncode, "", self.log.read_text()


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def test_signals_and_kill9_resume_bit_identical(tmp_path):
    """SIGTERM, then SIGINT, then kill -9 (at a random moment after a checkpoint), each followed by a
    resume: the run ends with weights, optimiser and RNG states bit-identical to an uninterrupted run
    with the same seed (CPU), and no interruption loses more than the steps since the last checkpoint."""
    N = 12
    ref = _Proc(tmp_path / "ref", "--iterations", N, "--set", "ckpt_every=100")  # runs alongside
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    seg = ["--iterations", N, "--set", "ckpt_every=1"]
    steps = [0]
    for sig in (signal.SIGTERM, signal.SIGINT):
        before = _inode(last)
        p = _Proc(run, *seg, *(["--resume"] if before else []))
        p.wait_for(lambda b=before: _inode(last) not in (None, b), f"a new checkpoint before {sig.name}")
        p.p.send_signal(sig)
        rc, _, err = p.finish()
        assert rc == 130 and "Traceback" not in err, err  # a clean exit, not a crash
        k = int(re.search(r"interrupted at step (\d+); resume with", err).group(1))
        assert steps[-1] < k < N and safe_load(last)["step"] == k  # saved at the interrupted step
        assert f"interrupted by signal {int(sig)} at step {k}" in (run / "train.log").read_text()
        steps.append(k)

    before = _inode(last)
    p = _Proc(run, *seg, "--resume")
    p.wait_for(lambda: _inode(last) != before, "a new checkpoint before kill -9")
    t0, first = time.monotonic(), _inode(last)
    p.wait_for(lambda: _inode(last) != first, "a second checkpoint before kill -9")
    step_time = time.monotonic() - t0  # one step + one save
    seen = safe_load(last)["step"]  # complete at any moment: written atomically
    time.sleep(random.uniform(0, step_time))  # a random moment of a step/save cycle
    p.p.kill()
    rc, _, _ = p.finish()
    assert rc == -signal.SIGKILL
    k = safe_load(last)["step"]
    assert steps[-1] < seen <= k < N

    p = _Proc(run, *seg, "--resume")
    rc, _, err = p.finish()
    assert rc == 0, err
    assert f"resumed from {last} at step {k}" in (run / "train.log").read_text()  # lost only steps after k
    assert sorted(f.name for f in last.parent.iterdir()) == ["generator.pt", "last.pt"]  # no stale temp files
    rc, _, err = ref.finish()
    assert rc == 0, err
    a, b = safe_load(tmp_path / "ref" / "checkpoints" / "last.pt"), safe_load(last)
    assert a["step"] == b["step"] == N
    assert_same_training_state(a, b)


# ============================================================================================ numerics
class _Pairs(Dataset):
    def __init__(self, n=4, size=32):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        clean = torch.from_numpy(rgb(self.size, self.size, seed=i)).permute(2, 0, 1).float() / 255
        rain = clean.clone()
        rain[:, 4:12, 4:12] = 0.95
        return {"rain": rain, "clean": clean, "mask": difference_mask(rain, clean), "id": str(i)}


def _poison_recipe(what: str, at_call: int):
    from agan.train.recipes import AganRecipe

    class Poison(AganRecipe):
        calls = 0

        def g_loss(self, D, batch, out, adversarial):
            type(self).calls += 1
            L_G, terms = super().g_loss(D, batch, out, adversarial)
            if type(self).calls == at_call:
                bad = {"nan": math.nan, "inf": math.inf}[what.split()[0]]
                if what.endswith("loss"):  # L_M becomes non-finite (and so does L_G)
                    terms["L_M"] = terms["L_M"] + bad
                    L_G = L_G + bad
                    terms["L_G"] = L_G
                else:  # the loss stays finite, the gradient reaching G does not
                    out.O.register_hook(lambda g: torch.full_like(g, bad))
            return L_G, terms

    return Poison


@pytest.mark.parametrize("what", ["nan loss", "inf loss", "nan grad", "inf grad"])
def test_non_finite_loss_or_gradient_stops_training(tmp_path, monkeypatch, what):
    from agan.train.loop import train
    from agan.train.monitor import NonFiniteLossError
    from agan.train.registry import RECIPES

    monkeypatch.setitem(RECIPES, "poison", _poison_recipe(what, at_call=3))
    cfg = Config.preset("cpu", model="poison", width=0.125, steps=2, crop_size=32, batch_size=2,
                        disc_width=0.25, disc_pool=2, iterations=6, log_every=1, val_every=0,
                        sample_every=0, ckpt_every=1,
                        vgg_layers=("relu1_1", "relu1_2"), device="cpu")
    term = "L_M" if what.endswith("loss") else "G"
    value = "(inf|nan)" if what == "inf grad" else what.split()[0]  # inf - inf inside backprop gives NaN
    with pytest.raises(NonFiniteLossError,
                       match=rf"{term}.* became {value} at step 3; .*last good checkpoint "
                             r".*step 2"):
        train(cfg, tmp_path / "run", progress=False, train_set=_Pairs())
    ck = safe_load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ck["step"] == 2
    assert all(torch.isfinite(v).all() for v in ck["G"].values())
    assert all(torch.isfinite(v).all() for v in ck["D"].values())


def test_resume_cleans_up_after_kill9(tmp_path):
    """kill -9 while appending to metrics.jsonl may leave half a line: resume drops it (and the rows
    past the checkpoint) instead of failing; temp files of a save cut short are removed."""
    import json

    from agan.train.loop import train

    cfg = Config.preset("cpu", width=0.125, steps=2, crop_size=32, batch_size=2, disc_width=0.25, disc_pool=2,
                        iterations=2, log_every=1, val_every=0, sample_every=0, ckpt_every=1,
                        vgg_layers=("relu1_1", "relu1_2"), device="cpu")
    run = tmp_path / "run"
    train(cfg, run, progress=False, train_set=_Pairs())
    metrics = run / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"step": 3, "split": "train", "L_G": 0.5}\n{"step": 4, "spl')
    stale = run / "checkpoints" / ".last.pt.x1y2z3.tmp"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    res = train(cfg.replace(iterations=3), run, resume=True, progress=False, train_set=_Pairs())
    assert res.step == 3 and not stale.exists()
    rows = [json.loads(ln) for ln in metrics.read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2, 3] and "L_G" in train_rows[-1]
    # each segment's "run" and "done" rows (agan.train.records) stay: 0 -> 2, then 2 -> 3
    assert [(r["split"], r["step"]) for r in rows if r["split"] in ("run", "done")] == [
        ("run", 0), ("done", 2), ("run", 2), ("done", 3)]
    last = train_rows[-1]
    assert {"grad_norm_G", "grad_norm_D"} <= set(last) and math.isfinite(last["grad_norm_G"])


# ============================================================================================= outputs
def test_never_over_an_input_nor_an_output_without_overwrite(tmp_path, weights, capsys):
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        Image.fromarray(rgb(8, 12, i)).save(d / f"{i}.png")
    originals = {f.name: f.read_bytes() for f in d.iterdir()}
    # outputs into the input folder: refused for every file, even with --overwrite
    rc = main(["derain", str(d), "--out", str(d), "--weights", str(weights), "--device", "cpu",
               "--overwrite"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("would write over an input") == 3
    assert {f.name: f.read_bytes() for f in d.iterdir()} == originals
    # same through another spelling of the folder
    rc = main(["derain", str(d / "0.png"), "--out", str(d / ".." / "in"), "--weights", str(weights),
               "--overwrite"])
    assert (rc == 1 and "over an input" in capsys.readouterr().err
            and (d / "0.png").read_bytes() == originals["0.png"])
    # existing outputs (and attention maps) are kept without --overwrite
    out = tmp_path / "out"
    (out / "attention").mkdir(parents=True)
    (out / "0.png").write_bytes(b"mine")
    (out / "attention" / "1_A1.png").write_bytes(b"mine too")
    rc = main(["derain", str(d), "--out", str(out), "--weights", str(weights), "--device", "cpu",
               "--save-attention"])
    err = capsys.readouterr().err
    assert rc == 1 and "2 skipped" in err and err.count("--overwrite") >= 2
    assert ((out / "0.png").read_bytes() == b"mine"
            and (out / "attention" / "1_A1.png").read_bytes() == b"mine too")
    assert (out / "2.png").is_file() and (out / "attention" / "2_A2.png").is_file()
    rc = main(["derain", str(d), "--out", str(out), "--weights", str(weights), "--device", "cpu",
               "--save-attention", "--overwrite"])
    assert rc == 0 and read_image(out / "0.png").shape == (8, 12, 3)
    assert read_image(out / "attention" / "1_A1.png").shape == (8, 12, 3)


def test_eval_csv_json_and_synth_need_overwrite(tmp_path, capsys):
    ds = tmp_path / "ds"
    rc = main(["synth", "--out", str(ds), "--n", "2", "--size", "16"])
    assert rc == 0
    params = (ds / "params.json").read_bytes()
    rc = main(["synth", "--out", str(ds), "--n", "1", "--size", "16", "--seed", "5"])
    assert (rc == 2 and "--overwrite" in capsys.readouterr().err
            and (ds / "params.json").read_bytes() == params)
    csv_path, json_path = tmp_path / "scores.csv", tmp_path / "summary.json"
    csv_path.write_text("precious\n")
    json_path.write_text("{}\n")
    args = ["eval", "--pred", str(ds / "data"), "--gt", str(ds / "gt"), "--input", "none"]
    rc = main([*args, "--csv", str(csv_path)])
    assert (rc == 2 and "scores.csv: exists" in capsys.readouterr().err
            and csv_path.read_text() == "precious\n")
    rc = main([*args, "--json", str(json_path)])
    assert rc == 2 and "summary.json: exists" in capsys.readouterr().err and json_path.read_text() == "{}\n"
    rc = main([*args, "--csv", str(csv_path), "--json", str(json_path), "--overwrite"])
    assert rc == 0 and csv_path.read_text().startswith("split,") and '"all"' in json_path.read_text()
    rc = main(["eval", "--weights", str(tmp_path / "w.pt"), "--data", str(ds), "--save-outputs",
               str(ds / "gt")])
    # refused before any loading
    assert rc == 2 and "folder is not empty (use --overwrite)" in capsys.readouterr().err


@pytest.mark.parametrize("writer", ["write_image", "atomic_save", "atomic_write_text", "eval --csv", "synth"])
def test_outputs_are_written_atomically(tmp_path, monkeypatch, writer, capsys):
    """A crash while writing leaves the previous file intact and no partial file under the final name;
    new files get the usual permissions (not mkstemp's 0600)."""
    folder = tmp_path / "o"
    folder.mkdir()
    name = {"write_image": "x.png", "atomic_save": "x.pt", "atomic_write_text": "x.csv",
            "eval --csv": "x.csv", "synth": "data/0_rain.png"}[writer]
    target = folder / name

    def write(i: int):
        if writer == "write_image":
            write_image(target, rgb(4, 4, i))
        elif writer == "atomic_save":
            atomic_save({"i": i}, target)
        elif writer == "atomic_write_text":
            atomic_write_text(target, f"i,{i}\n")
        elif writer == "eval --csv":
            ds = tmp_path / "ds"
            if not ds.exists():
                make_pairs(ds, ids=(1, 2), size=(8, 8))
            assert main(["eval", "--pred", str(ds / "data"), "--gt", str(ds / "gt"), "--input", "none",
                         "--csv", str(target), "--overwrite"]) == 0
        else:
            assert main(["synth", "--out", str(folder), "--n", "1", "--size", "16", "--seed", str(i),
                         "--overwrite"]) == 0

    def content():
        return target.read_bytes()

    umask = os.umask(0o022)
    try:
        write(1)
        assert (target.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(umask)
    good = content()
    real_replace = os.replace

    def half_then_crash(src, dst):
        with open(src, "r+b") as f:  # the temp file may be half written: the target must not see it
            f.truncate(max(1, os.path.getsize(src) // 2))
        raise OSError("killed while writing")

    monkeypatch.setattr(os, "replace", half_then_crash)
    try:
        write(2)
    except (OSError, AssertionError):
        pass
    monkeypatch.setattr(os, "replace", real_replace)
    capsys.readouterr()
    if writer == "synth":  # --overwrite first removes the old pairs: the file is whole or absent
        assert not target.exists() or content() == good
    else:
        assert content() == good  # untouched
    leftovers = [p for p in target.parent.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []
