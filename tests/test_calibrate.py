"""agan.synth.realism / calibrate: the realism statistics on constructed pairs with known answers, the
table's plumbing.
Nothing here reads ../shared: the real-data table is exercised on tiny pairs written to tmp_path."""

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from agan.synth import SynthParams
from agan.synth.calibrate import format_table, realism_table
from agan.synth.realism import realism_stats, single_image_stats

H, W = 200, 300
YY, XX = np.mgrid[:H, :W]
CENTRES = ((70, 90), (130, 210))  # (row, col) of the two drops
A, B = 1.08, -6.0  # the rainy shot's tone: rain_Y = A clean_Y + B outside the drops


def texture(seed=0, lo=40.0, hi=160.0) -> np.ndarray:
    """A random, fine-grained clean image (float RGB in [lo, hi]: no clipping after the tone change)."""
    rng = np.random.default_rng(seed)
    t = gaussian_filter(rng.standard_normal((H, W, 3)), (1.2, 1.2, 0))
    t = (t - t.min()) / (t.max() - t.min())
    return lo + (hi - lo) * t


def disks(r: float) -> np.ndarray:
    return np.any([np.hypot(YY - cy, XX - cx) <= r for cy, cx in CENTRES], axis=0)


def u8(x):
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def test_known_tone_diameters_contrast_and_colour():
    """rain = A clean + B outside two disks of radius r; inside, a half-contrast view of clean plus a
    colour shift: every statistic has a known value."""
    r = 18
    clean = texture()
    d = disks(r)
    shift = np.array([70.0, 80.0, 90.0])
    inside = 0.5 * (clean - 100.0) + 100.0 + shift
    rain = np.where(d[..., None], inside, A * clean + B)
    rain8, clean8 = u8(rain), u8(clean)
    s = realism_stats(rain8, clean8)
    assert s["gain"] == pytest.approx(A, abs=0.003)
    assert s["offset"] == pytest.approx(B, abs=0.3)
    assert s["tone_rmse"] < 0.6  # quantisation only
    assert s["n_drops"] == 2
    for k in ("diam_p25", "diam_p50", "diam_p75", "diam_area_p50"):
        assert s[k] == pytest.approx(2 * r, abs=1.0), k
    assert s["coverage"] == pytest.approx(d.mean(), rel=1e-6)
    assert s["drop_contrast"] == pytest.approx(0.5, abs=0.02)
    want = (rain8[d].astype(float) - clean8[d]).mean(0)
    assert want == pytest.approx(shift + 50.0 - 0.5 * clean[d].mean(0), abs=0.5)  # the construction
    assert [s["drop_shift_r"], s["drop_shift_g"], s["drop_shift_b"]] == pytest.approx(want, abs=1e-9)
    yr, yc = rain8 @ [0.299, 0.587, 0.114], clean8 @ [0.299, 0.587, 0.114]
    assert s["mean_shift"] == pytest.approx((yr - yc).mean())
    assert s["contrast_ratio"] == pytest.approx(yr.std() / yc.std())
    assert s["detail_ratio"] == pytest.approx(A, abs=0.01)  # a pure gain outside the drops
    assert s["changed_5_tone"] == pytest.approx(d.mean(), abs=0.002)  # only the drops differ after the fit


def soft_pair(sigma: float, r: float = 30, height: float = 80.0):
    """Drops that add ``height`` grey levels through a Gaussian-blurred coverage (sigma = 0: sharp)."""
    clean = texture(1)
    alpha = disks(r).astype(float)
    if sigma:
        alpha = gaussian_filter(alpha, sigma)
    return u8(A * clean + B + height * alpha[..., None]), u8(clean)


def test_edge_width_measures_the_blur():
    """A sharp edge reads ~0.8 px (the pixel grid); a Gaussian blur of sigma reads ~2.56 sigma (the
    10-90% rise of a Gaussian edge), independent of the drops' contrast; the soft ratio grows too."""
    sharp = realism_stats(*soft_pair(0))
    assert 0.5 < sharp["edge_width"] < 1.2
    widths = {}
    for sigma in (1.5, 3.0):
        s = realism_stats(*soft_pair(sigma))
        widths[sigma] = s["edge_width"]
        assert s["edge_width"] == pytest.approx(2.563 * sigma, rel=0.1), sigma
        assert s["soft_ratio"] > sharp["soft_ratio"] + 0.05
        assert s["gain"] == pytest.approx(A, abs=0.003)  # the halo is excluded from the tone fit
        assert s["diam_p50"] == pytest.approx(60, abs=0.8 * sigma + 1)  # M's edge: where the ramp passes 30
    assert widths[3.0] / widths[1.5] == pytest.approx(2.0, rel=0.1)
    faint = realism_stats(*soft_pair(3.0, height=50.0))
    assert faint["edge_width"] == pytest.approx(widths[3.0], rel=0.1)


def test_no_drops_gives_nan_not_errors():
    clean = u8(texture())
    s = realism_stats(clean, clean)
    assert s["n_drops"] == 0 and s["coverage"] == 0.0 and s["gain"] == pytest.approx(1.0)
    assert np.isnan(s["edge_width"]) and np.isnan(s["diam_p50"]) and np.isnan(s["drop_contrast"])
    with pytest.raises(ValueError, match="one shape"):
        realism_stats(clean, clean[:10])


def test_single_image_smooth_fraction():
    """Left half flat, right half textured: half the image is smooth (up to the 5x5 window's reach)."""
    img = u8(texture(2, 0, 255))
    img[:, : W // 2] = 120
    s = single_image_stats(img)
    assert s["smooth_frac"] == pytest.approx(0.5, abs=3 / W)
    assert s["smooth_d50"] == pytest.approx(np.sqrt(4 * H * (W // 2 - 2) / np.pi), rel=0.05)


def write_pairs(root, n=2, size=(96, 64)):
    for sub in ("rain", "clean"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        clean = u8(gaussian_filter(rng.uniform(30, 220, (size[1], size[0], 3)), (2, 2, 0)))
        rain = clean.copy()
        rain[10:30, 20:40] = 230  # one bright blob
        Image.fromarray(rain).save(root / "rain" / f"{i}_rain.png")
        Image.fromarray(clean).save(root / "clean" / f"{i}_clean.png")


def test_table_absent_folder_and_plumbing(tmp_path):
    assert realism_table(tmp_path / "absent") is None
    (tmp_path / "empty").mkdir()
    assert realism_table(tmp_path / "empty") is None
    root = tmp_path / "real" / "train_pairs"
    write_pairs(root)
    (tmp_path / "real" / "unpaired" / "style").mkdir(parents=True)
    Image.fromarray(u8(texture(3)[:100, :150])).save(tmp_path / "real" / "unpaired" / "style" / "a.png")
    t = realism_table(root, params=SynthParams(), n_synthetic=1, seed=0)
    assert t["n_real"] == 2 and t["n_synthetic"] == 2
    assert t["real"]["n_drops"] == 1 and t["real"]["diam_p50"] == pytest.approx(np.sqrt(4 * 400 / np.pi))
    assert len(t["per_image"]["real"]) == 2 and len(t["per_image"]["synthetic"]) == 2
    assert set(t["single"]) == {"real rain", "synthetic rain", "real clean", "style"}
    assert t["example"]["real_rain"].shape == t["example"]["syn_rain"].shape == (64, 96, 3)
    md = format_table(t, per_image=True)
    assert md.startswith("| statistic | real (2 pairs) | synthetic (2 renders) | real 0 | real 1 |")
    assert "tone fit outside drops: gain a" in md and "| partner-free proxy |" in md
    again = realism_table(root, n_synthetic=1, seed=0, keep_example=False)
    assert "example" not in again
    keys = sorted(t["synthetic"])
    assert keys == sorted(again["synthetic"])  # deterministic (NaN == NaN here)
    np.testing.assert_array_equal([again["synthetic"][k] for k in keys], [t["synthetic"][k] for k in keys])
