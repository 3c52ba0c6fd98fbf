"""The arithmetic behind benchmark claims in the README (not their speed), and the benchmark scripts'
numbers against the kit's own functions."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from agan.checkpoint import atomic_save
from agan.config import Config
from agan.evaluation.protocol import score_pair
from agan.models import build_generator


def _load(name: str):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_winograd_f2x2_3x3_is_a_3x3_convolution():
    wb = _load("bench_winograd")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 12, 18, generator=g, dtype=torch.float64)  # (C, H, W)
    w = torch.randn(7, 5, 3, 3, generator=g, dtype=torch.float64)  # (K, C, 3, 3)
    out = wb.winograd_conv(x, wb.winograd_weights(w))  # (K, H, W)
    torch.testing.assert_close(out, F.conv2d(x[None], w, padding=1)[0], rtol=0, atol=1e-12)


def test_real_pairs_scores_with_score_pair(tmp_path, capsys):
    rp = _load("real_pairs")
    rng = np.random.default_rng(0)
    pairs = tmp_path / "pairs"
    for sub in ("rain", "clean"):
        (pairs / sub).mkdir(parents=True)
    for i in (0, 1):  # 30 x 42: not a multiple of 4, scored on the top-left 28 x 40
        clean = rng.integers(0, 256, (30, 42, 3), dtype=np.uint8)
        rain = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(pairs / "clean" / f"{i}_clean.png")
        Image.fromarray(rain).save(pairs / "rain" / f"{i}_rain.png")
    cfg = Config.preset("cpu", width=0.125, steps=2)
    torch.manual_seed(0)
    atomic_save({"format": "agan-generator", "config": cfg.to_dict(), "G": build_generator(cfg).state_dict()},
                tmp_path / "g.pt")
    argv = ["--weights", str(tmp_path / "g.pt"), "--pairs", str(pairs), "--out", str(tmp_path / "out"),
            "--json", str(tmp_path / "r.json")]
    assert rp.main(argv) == 0
    out = capsys.readouterr().out
    mean_line = r"^real pairs: input (\S+) dB / (\S+) -> output (\S+) dB / (\S+) \(gain (\S+) dB\)$"
    m = re.search(mean_line, out, re.M)
    assert m, out
    doc = json.loads((tmp_path / "r.json").read_text())
    scores = []
    for i in (0, 1):
        clean = np.asarray(Image.open(pairs / "clean" / f"{i}_clean.png"))
        rain = np.asarray(Image.open(pairs / "rain" / f"{i}_rain.png"))
        derained = np.asarray(Image.open(tmp_path / "out" / f"{i}_derained.png"))
        assert derained.shape == clean.shape  # full resolution
        scores.append([*score_pair(rain, clean), *score_pair(derained, clean)])
        row = doc["images"][i]
        assert [row["input_psnr"], row["input_ssim"], row["psnr"], row["ssim"]] == scores[-1]
    ip, iss, op, oss = np.mean(scores, axis=0)
    assert [float(g) for g in m.groups()] == [round(ip, 2), round(iss, 4), round(op, 2), round(oss, 4),
                                              round(op - ip, 2)]
    assert doc["mean"]["psnr"] == pytest.approx(op) and doc["mean"]["gain_db"] == pytest.approx(op - ip)
    # nothing is overwritten; a missing folder is one line and exit 2
    assert rp.main(argv) == 2 and "exists" in capsys.readouterr().err
    assert rp.main(["--weights", str(tmp_path / "g.pt"), "--pairs", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "none") in err


def test_bench_clean_scores_each_photo_against_itself(tmp_path, monkeypatch, capsys):
    """benchmarks/bench_clean.py: PSNR (the protocol's score_pair) and mean-Y shift of each drop-free photo
    derained against itself, grouped; a model that changes nothing passes every photo."""
    bc = _load("bench_clean")
    import agan.infer.pipeline as pipeline

    real = tmp_path / "real" / "pairs" / "clean"
    real.mkdir(parents=True)
    img = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(img).save(real / "0_clean.png")
    seen = []

    def fake_derain(image, weights=None, precision="fp32"):
        seen.append(image.shape)
        out = image.copy()
        out[:8] = np.clip(out[:8].astype(int) + 40, 0, 255)  # a visible change on the first rows
        return out, []

    monkeypatch.setattr(pipeline, "derain", fake_derain)
    assert bc.main(["--real", str(tmp_path / "real"), "--json", str(tmp_path / "rows.json")]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    groups = [r["group"] for r in rows]
    assert groups[0] == "real clean shots"
    assert "never trained on" in groups and "training backgrounds" in groups
    first = rows[0]
    changed = img.copy()
    changed[:8] = np.clip(changed[:8].astype(int) + 40, 0, 255)
    assert first["psnr"] == pytest.approx(score_pair(changed, img)[0]) and first["mean_y_shift"] > 0
    assert not any(r["ok"] for r in rows) and "photos never trained on: 0 of" in capsys.readouterr().out
    monkeypatch.setattr(pipeline, "derain", lambda image, **kw: (image.copy(), []))
    assert bc.main(["--no-real"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if re.search(r"mean Y [+-]", ln)]  # per photo
    assert lines and all(ln.endswith(" ok") for ln in lines)
    assert bc.main(["--no-real", "--json", str(tmp_path / "rows.json")]) == 2  # never overwritten


def test_real_attention_scores_the_maps_against_the_papers_mask(tmp_path, monkeypatch, capsys):
    """benchmarks/real_attention.py: per real pair, the IoU of A_t >= 0.5 with |rain - clean| >= 30."""
    ra = _load("real_attention")
    import agan.infer.pipeline as pipeline

    clean = np.full((16, 20, 3), 100, np.uint8)
    rain = clean.copy()
    rain[4:8, 4:10] = 200  # the drop: M is exactly this block
    for name in ("train_pairs", "val_pairs"):
        for kind, im in (("rain", rain), ("clean", clean)):
            (tmp_path / name / kind).mkdir(parents=True)
            Image.fromarray(im).save(tmp_path / name / kind / f"0_{kind}.png")
    A = np.zeros((16, 20), np.float32)
    A[4:8, 4:7] = 0.9  # half of the drop
    monkeypatch.setattr(pipeline, "derain", lambda image, weights=None: (image, [A, A]))
    assert ra.main(["--real", str(tmp_path), "--synthetic", "0"]) == 0
    out = capsys.readouterr().out
    assert "train_pairs: 1 images, mean IoU A_1..A_N 0.500 0.500" in out and "val_pairs: 1 images" in out
