"""agan.evaluation: the metric protocol against independent computations, pairing (agan.data.layout),
folder/model evaluation."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from agan.data.layout import find_splits, image_id, pair_by_id
from agan.evaluation.evaluate import evaluate_folders, evaluate_model
from agan.evaluation.protocol import psnr, rgb_to_y, score_pair, ssim, to_uint8_output


# ---------------------------------------------------------------------------------------------- helpers
def ssim_reference(a, b, data_range=255.0, win=7, k1=0.01, k2=0.03):
    """Wang et al. 2004 SSIM written out directly: every valid win x win window, uniform weights,
    sample (N-1) variances/covariance, mean of the SSIM map."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    wa = np.lib.stride_tricks.sliding_window_view(a, (win, win)).reshape(*np.subtract(a.shape, win - 1), -1)
    wb = np.lib.stride_tricks.sliding_window_view(b, (win, win)).reshape(*np.subtract(b.shape, win - 1), -1)
    n = win * win
    mx, my = wa.mean(-1), wb.mean(-1)
    vx = ((wa - mx[..., None]) ** 2).sum(-1) / (n - 1)
    vy = ((wb - my[..., None]) ** 2).sum(-1) / (n - 1)
    cxy = ((wa - mx[..., None]) * (wb - my[..., None])).sum(-1) / (n - 1)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


def rand_img(rng, h, w):
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def noisy(rng, img, sigma):
    return np.clip(img.astype(np.float64) + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


# ---------------------------------------------------------------------------------------------- pixels
def test_rgb_to_y_values():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y(px, "full")[0], [76.245, 149.685, 29.07, 255.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(rgb_to_y(px, "matlab")[0],
                               [16 + 65.481, 16 + 128.553, 16 + 24.966, 235.0, 16.0], atol=1e-9)
    # quantised as the libraries return uint8: OpenCV 14-bit fixed point, MATLAB rounding
    assert rgb_to_y(px, "full", quantize=True)[0].tolist() == [76, 150, 29, 255, 0]
    assert rgb_to_y(px, "matlab", quantize=True)[0].tolist() == [81, 145, 41, 235, 16]
    assert rgb_to_y(px).dtype == np.float64


def test_quantized_y_is_within_half_a_level():
    img = rand_img(np.random.default_rng(1), 40, 40)
    exact = rgb_to_y(img, "full")
    q = rgb_to_y(img, "full", quantize=True)
    # OpenCV's 14-bit coefficients differ from 0.299/0.587/0.114 by < 2.5e-5 each
    fixed_point_error = 255 * (abs(4899 / 16384 - 0.299) + abs(9617 / 16384 - 0.587)
                               + abs(1868 / 16384 - 0.114))
    assert fixed_point_error < 0.013
    assert np.all(np.abs(q - exact) <= 0.5 + fixed_point_error)
    assert np.mean(q == np.round(exact)) > 0.99
    assert np.all(q == np.round(q))


def test_cast_clip_and_wrap_on_a_crafted_case():
    x = np.array([[[1.01, -0.01, 0.5], [1.0, 0.0, 0.999], [2.0, -1.0, 0.1]]], np.float32)  # 1x3x3
    clip = to_uint8_output(x, "clip")
    wrap = to_uint8_output(x, "wrap")
    assert clip.dtype == wrap.dtype == np.uint8
    assert clip.tolist() == [[[255, 0, 128], [255, 0, 255], [255, 0, 26]]]
    # wrap: x*255 in float32, truncate toward zero, modulo 256:
    # 1.01 -> 257.55 -> 257 -> 1; -0.01 -> -2.55 -> -2 -> 254; 0.5 -> 127.5 -> 127;
    # 2 -> 510 -> 254; -1 -> -255 -> 1
    assert wrap.tolist() == [[[1, 254, 127], [255, 0, 254], [254, 1, 25]]]
    u = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, 2)
    assert to_uint8_output(u, "wrap") is u  # uint8 passes through


def test_cast_rejects_unknown():
    with pytest.raises(ValueError, match="cast"):
        to_uint8_output(np.zeros((4, 4, 3)), "round")


# ---------------------------------------------------------------------------------------------- metrics
def test_psnr_hand_computed():
    gt = np.zeros((8, 8, 3), np.uint8)
    out = np.full((8, 8, 3), 10, np.uint8)  # Y = 10 everywhere: MSE 100
    p, s = score_pair(out, gt)
    assert p == pytest.approx(10 * math.log10(255 ** 2 / 100), abs=1e-12)
    # SSIM of flat images 0 vs 10: contrast/structure term 1, luminance (0 + C1) / (0 + 10^2 + C1),
    # C1 = (0.01*255)^2
    c1 = (0.01 * 255) ** 2
    assert s == pytest.approx(c1 / (100 + c1), rel=1e-12)
    assert psnr(gt, gt) == math.inf


def test_ssim_matches_an_independent_implementation():
    rng = np.random.default_rng(2)
    a = rand_img(rng, 24, 31)
    b = noisy(rng, a, 20)
    ya, yb = rgb_to_y(a, quantize=True), rgb_to_y(b, quantize=True)
    ref = ssim_reference(ya, yb)
    assert ssim(ya, yb) == pytest.approx(ref, rel=1e-10, abs=1e-12)
    assert 0.2 < ref < 0.99
    # RGB: mean of the per-channel SSIMs
    ref_rgb = np.mean([ssim_reference(a[..., c], b[..., c]) for c in range(3)])
    assert ssim(a, b) == pytest.approx(ref_rgb, rel=1e-10)


@pytest.mark.parametrize("color", ["y", "y-matlab", "rgb"])
def test_score_pair_against_independent_computation(color):
    rng = np.random.default_rng(3)
    gt = rand_img(rng, 26, 31)  # cropped to 24 x 28
    out = noisy(rng, gt, 12).astype(np.float32) / 255  # a float output in [0, 1]
    p, s = score_pair(out, gt, color=color)
    o8 = np.rint(np.clip(out, 0, 1) * 255)[:24, :28]
    g = gt[:24, :28].astype(np.float64)
    if color == "rgb":
        mse = np.mean((o8 - g) ** 2)
        ref_s = np.mean([ssim_reference(o8[..., c], g[..., c]) for c in range(3)])
    else:
        if color == "y":  # OpenCV: round(0.299 R + 0.587 G + 0.114 B) in 14-bit fixed point
            w = np.array([4899, 9617, 1868])
            yo = (o8 @ w + 8192) // 16384
            yg = (g @ w + 8192) // 16384
        else:
            w = np.array([65.481, 128.553, 24.966])
            yo = np.floor(16 + o8 @ w / 255 + 0.5)
            yg = np.floor(16 + g @ w / 255 + 0.5)
        mse = np.mean((yo - yg) ** 2)
        ref_s = ssim_reference(yo, yg)
    assert p == pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-9)
    assert s == pytest.approx(ref_s, abs=1e-10)


def test_score_pair_crops_to_multiple_of_4_and_checks_sizes():
    rng = np.random.default_rng(4)
    gt = rand_img(rng, 18, 21)
    out = gt.copy()
    out[16:, :] = 0  # only in the cropped-away margin (16 x 20 is kept)
    out[:, 20:] = 255
    assert score_pair(out, gt)[0] == math.inf
    assert score_pair(out, gt)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in size"):
        score_pair(gt[:12], gt)


def test_score_pair_wrap_changes_the_score_of_out_of_range_outputs():
    rng = np.random.default_rng(5)
    gt = rand_img(rng, 16, 16)
    out = gt.astype(np.float32) / 255
    out[0, 0] = 1.02  # 260.1 -> 4 with wrap, 255 with clip
    assert score_pair(out, gt, cast="wrap")[0] < score_pair(out, gt, cast="clip")[0]
    t = torch.from_numpy(out).permute(2, 0, 1)  # tensors are accepted too
    assert score_pair(t, gt) == score_pair(out, gt)


# ---------------------------------------------------------------------------------------------- pairing
def test_image_id():
    assert image_id("12_rain.png") == 12 and image_id("12_clean.jpg") == 12 and image_id("d/3.png") == 3
    assert image_id("foo.png") == "foo" and image_id("a1_b.png") == "a1_b" and image_id("7-x.png") == 7
    assert image_id("12abc.png") == "12abc"


def write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_pair_by_id_and_errors_name_the_files(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    for i in (1, 2, 10):
        write(tmp_path / "a" / f"{i}_rain.png", img)
    for i in (2, 10, 11):
        write(tmp_path / "b" / f"{i}_clean.png", img)
    with pytest.raises(ValueError) as e:
        pair_by_id(tmp_path / "a", tmp_path / "b")
    msg = str(e.value)
    assert "1_rain.png" in msg and "11_clean.png" in msg and "10_" not in msg
    (tmp_path / "a" / "1_rain.png").unlink()
    (tmp_path / "b" / "11_clean.png").unlink()
    pairs = pair_by_id(tmp_path / "a", tmp_path / "b")
    assert [(k, a.name, b.name) for k, a, b in pairs] == [(2, "2_rain.png", "2_clean.png"),
                                                         (10, "10_rain.png", "10_clean.png")]
    write(tmp_path / "a" / "2_rain.jpg", img)
    with pytest.raises(ValueError, match="share the id 2"):
        pair_by_id(tmp_path / "a", tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        pair_by_id(tmp_path / "nothing", tmp_path / "b")


def make_dataset(root, splits=("test_a",), n=3, size=(21, 30), seed=0):
    """Raindrop layout: root/<split>/{data/N_rain.png, gt/N_clean.png}; rain = gt + noise."""
    rng = np.random.default_rng(seed)
    for s in splits:
        for i in range(1, n + 1):
            gt = rand_img(rng, *size)
            write(root / s / "gt" / f"{i}_clean.png", gt)
            write(root / s / "data" / f"{i}_rain.png", noisy(rng, gt, 15))
    return root


def test_find_splits(tmp_path):
    make_dataset(tmp_path / "ds", splits=("train", "test_a", "test_b"), n=1)
    assert [s for s, _, _ in find_splits(tmp_path / "ds")] == ["test_a", "test_b"]
    assert [s for s, _, _ in find_splits(tmp_path / "ds", ["train"])] == ["train"]
    assert [s for s, _, _ in find_splits(tmp_path / "ds" / "test_b")] == ["test_b"]
    with pytest.raises(ValueError, match="no split test_c; available: test_a, test_b, train"):
        find_splits(tmp_path / "ds", ["test_c"])
    with pytest.raises(FileNotFoundError, match="no paired folders: looked for data/"):
        find_splits(tmp_path)


LAYOUTS = [("rain", "clean", "{}_rain.png", "{}_clean.png"),  # e.g. ../shared/real/train_pairs
           ("input", "target", "{}.png", "{}.png"),
           ("input", "gt", "{}_input.png", "{}_gt.png")]


def make_pairs(folder, rain_dir, clean_dir, rain_name, clean_name, ids=(3, 1, 10), size=(21, 30), seed=0):
    """folder/<rain_dir>/<rain_name % id> + folder/<clean_dir>/<clean_name % id>; rain = clean + noise."""
    rng = np.random.default_rng(seed)
    for i in ids:
        gt = rand_img(rng, *size)
        write(folder / clean_dir / clean_name.format(i), gt)
        write(folder / rain_dir / rain_name.format(i), noisy(rng, gt, 15))
    return folder


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: f"{x[0]}+{x[1]}")
def test_other_pair_layouts_are_found_and_scored(tmp_path, layout):
    from agan.data.layout import PAIR_LAYOUTS

    rain_dir, clean_dir = layout[:2]
    assert (rain_dir, clean_dir) in PAIR_LAYOUTS
    flat = make_pairs(tmp_path / "flat", *layout)
    assert find_splits(flat) == [("flat", flat / rain_dir, flat / clean_dir)]
    split = make_pairs(tmp_path / "ds" / "test_a", *layout).parent
    make_pairs(tmp_path / "ds" / "test_b", *layout, ids=(5,))
    assert [s for s, _, _ in find_splits(split)] == ["test_a", "test_b"]

    r = evaluate_model(lambda img: img, flat, progress=False)  # the identity model scores the baseline
    assert [row["id"] for row in r.rows] == [1, 3, 10] and r.splits == ["flat"]
    for row in r.rows:
        rain = np.asarray(Image.open(flat / rain_dir / row["input"]))
        gt = np.asarray(Image.open(flat / clean_dir / row["gt"]))
        assert (row["psnr"], row["ssim"]) == (row["input_psnr"], row["input_ssim"]) == score_pair(rain, gt)
    # ready outputs: the rainy inputs beside gt_dir are found for the baseline
    pred = tmp_path / "pred"
    for i in (1, 3, 10):
        write(pred / f"{i}.png", np.asarray(Image.open(flat / clean_dir / layout[3].format(i))))
    r = evaluate_folders(pred, flat / clean_dir, progress=False)
    assert r.psnr == math.inf and r.protocol["input"] == str(flat / rain_dir)
    baseline = evaluate_model(lambda img: img, flat, progress=False).psnr
    assert r.means()["input_psnr"] == pytest.approx(baseline)


def test_cli_eval_real_pair_layout_and_one_line_error(tmp_path, capsys):
    from agan.cli import main

    make_pairs(tmp_path / "pairs", *LAYOUTS[0], ids=(0, 1))
    rc = main(["eval", "--pred", str(tmp_path / "pairs" / "rain"), "--gt", str(tmp_path / "pairs" / "clean")])
    assert rc == 0 and "input PSNR" in capsys.readouterr().out
    (tmp_path / "empty" / "photos").mkdir(parents=True)
    rc = main(["eval", "--weights", str(tmp_path / "w.pt"), "--data", str(tmp_path / "empty")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("agan eval: error: ")
    assert str(tmp_path / "empty") in err and "Traceback" not in err
    for layout in ("data/+gt/", "rain/+clean/", "input/+target/", "input/+gt/"):
        assert layout in err


def test_cli_eval_help_names_every_layout(capsys):
    from agan.cli import main
    from agan.data.layout import PAIR_LAYOUTS

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for a, b in PAIR_LAYOUTS:
        assert f"{a}/+{b}/" in text or f"{{{a},{b}}}" in text, (a, b)


# ------------------------------------------------------------------------------------------- folders, models
def test_evaluate_folders_scores_and_baseline(tmp_path):
    ds = make_dataset(tmp_path / "ds")
    pred = tmp_path / "pred"
    rng = np.random.default_rng(9)
    expected = {}
    for i in (1, 2, 3):
        gt = np.asarray(Image.open(ds / "test_a" / "gt" / f"{i}_clean.png"))
        out = noisy(rng, gt, 5)
        write(pred / f"{i}_rain.png", out)
        expected[i] = score_pair(out, gt)
    r = evaluate_folders(pred, ds / "test_a" / "gt", progress=False)
    assert [row["id"] for row in r.rows] == [1, 2, 3] and r.splits == ["test_a"]
    for row in r.rows:
        assert (row["psnr"], row["ssim"]) == expected[row["id"]]
        assert row["input"] == f"{row['id']}_rain.png" and row["input_psnr"] < row["psnr"]
    m = r.means()
    assert m["n"] == 3 and m["psnr"] == pytest.approx(np.mean([v[0] for v in expected.values()]))
    assert r.psnr == m["psnr"] and r.ssim == m["ssim"]
    # CSV round trip and JSON summary
    with open(r.to_csv(tmp_path / "s.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and float(rows[1]["psnr"]) == pytest.approx(expected[2][0])
    summary = json.loads(r.to_json(tmp_path / "s.json").read_text())
    assert summary["splits"]["test_a"]["n"] == 3 and summary["protocol"]["color"] == "y"
    assert "test_a" in r.table() and "input PSNR" in r.table()
    # no baseline when asked, identical folders give inf / 1
    r2 = evaluate_folders(ds / "test_a" / "gt", ds / "test_a" / "gt", input_dir=None, progress=False)
    assert r2.means()["input_psnr"] is None and r2.psnr == math.inf and r2.ssim == pytest.approx(1.0)


def test_evaluate_model_with_callables_and_a_generator(tmp_path):
    ds = make_dataset(tmp_path / "ds", splits=("test_a", "test_b"), n=2)
    seen = []

    def identity(img):
        seen.append(img.shape)
        return img

    r = evaluate_model(identity, ds, progress=False)
    assert r.splits == ["test_a", "test_b"] and len(r.rows) == 4
    assert set(seen) == {(20, 28, 3)}  # cropped to a multiple of 4 before the model sees it
    for row in r.rows:  # the identity model scores exactly the baseline
        assert (row["psnr"], row["ssim"]) == (row["input_psnr"], row["input_ssim"])

    def overshoot(img):  # a float output slightly above 1 where the input is bright
        return img.astype(np.float32) / 255 * np.float32(1.03)

    clip = evaluate_model(overshoot, ds, splits=["test_a"], cast="clip", progress=False)
    wrap = evaluate_model(overshoot, ds, splits=["test_a"], cast="wrap", progress=False)
    assert wrap.psnr < clip.psnr - 3 and wrap.protocol["cast"] == "wrap"

    from agan.models import Generator

    torch.manual_seed(0)
    g = Generator(width=0.125, steps=2)
    r = evaluate_model(g, ds, splits=["test_b"], device="cpu", out_dir=tmp_path / "o", progress=False)
    assert len(r.rows) == 2 and (tmp_path / "o" / "test_b" / "1_rain.png").is_file()
    saved = np.asarray(Image.open(tmp_path / "o" / "test_b" / "1_rain.png"))
    gt = np.asarray(Image.open(ds / "test_b" / "gt" / "1_clean.png"))
    assert (r.rows[0]["psnr"], r.rows[0]["ssim"]) == score_pair(saved, gt)


def test_cli_eval(tmp_path, capsys):
    from agan.cli import main

    ds = make_dataset(tmp_path / "ds", n=2)
    rc = main(["eval", "--pred", str(ds / "test_a" / "data"), "--gt", str(ds / "test_a" / "gt"),
               "--input", "none", "--csv", str(tmp_path / "x.csv"), "--color", "rgb"])
    out = capsys.readouterr().out
    assert rc == 0 and "test_a" in out and "color rgb" in out
    with open(tmp_path / "x.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    (ds / "test_a" / "gt" / "2_clean.png").unlink()
    rc = main(["eval", "--pred", str(ds / "test_a" / "data"), "--gt", str(ds / "test_a" / "gt")])
    assert rc == 2 and "2_rain.png" in capsys.readouterr().err
    rc = main(["eval", "--pred", str(ds), "--weights", "w.pt"])
    assert rc == 2 and "either" in capsys.readouterr().err


def test_evaluate_model_scores_raw_O_when_asked(tmp_path):
    """A weights file runs with the inference settings saved in it unless ``settings`` says otherwise:
    ``PAPER`` scores G's raw O, as the paper (and Table 1) does."""
    from agan.checkpoint import atomic_save
    from agan.config import Config
    from agan.images import crop_to_multiple
    from agan.infer.pipeline import derain
    from agan.infer.settings import PAPER
    from agan.models import build_generator

    ds = make_dataset(tmp_path / "ds", n=2)
    cfg = Config.preset("cpu", width=0.125, steps=2)  # saves derain_smooth 2, derain_blend "attention"
    assert (cfg.derain_smooth, cfg.derain_blend) == (2.0, "attention")
    torch.manual_seed(0)
    G = build_generator(cfg).eval()
    path = tmp_path / "generator.pt"
    atomic_save({"format": "agan-generator", "version": 1, "config": cfg.to_dict(), "step": 0,
                 "G": G.state_dict()}, path)
    raw = evaluate_model(path, ds, device="cpu", progress=False, settings=PAPER)
    kit = evaluate_model(path, ds, device="cpu", progress=False)
    assert raw.protocol["settings"] == {"size": 0, "smooth": 0.0, "blend": "none"}
    assert "settings" not in kit.protocol
    for row_raw, row_kit in zip(raw.rows, kit.rows):
        rain = crop_to_multiple(np.asarray(Image.open(ds / "test_a" / "data" / row_raw["input"])))
        gt = crop_to_multiple(np.asarray(Image.open(ds / "test_a" / "gt" / row_raw["gt"])))
        O, _ = derain(rain.astype(np.float32) / 255, model=G, device="cpu", clip=False, settings=PAPER)
        assert (row_raw["psnr"], row_raw["ssim"]) == score_pair(O, gt)  # G's own O
        assert abs(row_kit["psnr"] - row_raw["psnr"]) > 1e-3  # smoothed and attention-weighted: another O
