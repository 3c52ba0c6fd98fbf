"""agan.synth: render determinism, exact masks, the optics (inversion, TIR rim, defocus), parameters."""

import json

import numpy as np
import pytest

from agan.images import difference_mask
from agan.synth import SynthParams, make_pair, render
from agan.synth.backgrounds import BackgroundSource, backgrounds, procedural_scene

H = W = 160
YY, XX = np.mgrid[:H, :W]
RR = np.hypot(YY - 80, XX - 80)  # distance to the drop centre used below, px


def lab_params(**kw) -> SynthParams:
    """Upright pane 100 mm away, 36 mm lens on a frame as wide as the image (f = W px), no haze:
    a drop of footprint radius a mm covers a disk of a * f / d_g = 1.6 a px."""
    base = {"frame_px": None, "focal_mm": (36, 36), "glass_mm": (100, 100), "tilt_deg": (0, 0),
            "f_number": (200, 200), "focus_m": (5, 5), "scene_m": (6, 6), "haze": (0, 0), "exposure": (1, 1),
            "drop_gain": (1, 1), "drop_haze": (0, 0), "contact_angle_deg": (45, 45)}
    base.update(kw)
    return SynthParams(**base).validate()


def grey(v=150):
    return np.full((H, W, 3), v, np.uint8)


def test_deterministic_bytes_and_seed_dependence():
    a, b = make_pair(7, 3, 48), make_pair(7, 3, 48)
    assert a.rain.tobytes() == b.rain.tobytes() and a.clean.tobytes() == b.clean.tobytes()
    assert a.alpha.tobytes() == b.alpha.tobytes() and a.params == b.params
    c = make_pair(8, 3, 48)
    assert c.rain.tobytes() != a.rain.tobytes()
    # render() itself: same seed, same params -> same bytes; a Generator works too
    r1 = render(a.clean, 11)
    r2 = render(a.clean, np.random.default_rng(11))
    assert r1.rain.tobytes() == r2.rain.tobytes()


def test_result_fields_and_spec_mask():
    r = make_pair(0, 1, (40, 56))
    assert r.rain.shape == r.clean.shape == (40, 56, 3) and r.rain.dtype == np.uint8
    assert r.alpha.shape == (40, 56) and r.alpha.dtype == np.float32
    assert 0.0 <= r.alpha.min() and r.alpha.max() <= 1.0
    assert r.mask.dtype == bool and r.diff_mask.dtype == bool
    expected = difference_mask(r.rain, r.clean, 30)[0].numpy() > 0  # docs/paper.md#raindrop-mask
    np.testing.assert_array_equal(r.diff_mask, expected)
    json.dumps(r.params)  # JSON-serialisable
    assert r.params["n_drops"] > 0


def test_one_drop_mask_area():
    # a = 10 mm at d_g = 100 mm with f = 160 px -> radius 16 px -> area pi * 16^2
    r = render(grey(), 0, lab_params(), drops=[[80, 80, 10, 45]])
    expected = np.pi * 16.0 ** 2
    assert abs(r.mask.sum() - expected) / expected < 0.03
    assert abs(r.footprint.sum() - expected) / expected < 0.01  # anti-aliased coverage is near-exact
    assert r.mask[80, 80] and not r.mask[80, 100]  # centred where asked
    # a smaller drop: the area scales with a^2
    r2 = render(grey(), 0, lab_params(), drops=[[80, 80, 5, 45]])
    assert abs(r2.mask.sum() - expected / 4) / (expected / 4) < 0.05


def test_drop_shows_inverted_background():
    grad = np.repeat(np.linspace(20, 235, H)[:, None], W, 1).astype(np.uint8)  # dark top, bright bottom
    img = np.stack([grad] * 3, -1)
    r = render(img, 0, lab_params(), drops=[[80, 80, 10, 45]])
    inner = RR < 8
    corr_bg = np.corrcoef(YY[inner], img[..., 0][inner].astype(float))[0, 1]
    corr_drop = np.corrcoef(YY[inner], r.rain[..., 0][inner].astype(float))[0, 1]
    assert corr_bg > 0.99 and corr_drop < -0.9  # the drop shows the scene upside down
    # minified: the drop spans a wider range of the scene than the pixels it covers
    col = r.rain[72:89, 80, 0].astype(float)
    assert np.ptp(col) > np.ptp(img[72:89, 80, 0].astype(float))


def test_rim_is_darker_than_interior():
    r = render(grey(), 0, lab_params(contact_angle_deg=(60, 60)), drops=[[80, 80, 10, 60]])
    rim, inner = (RR > 13.5) & (RR < 15.5), RR < 8
    assert r.params["tir_fraction"] > 0.1  # total internal reflection happens at 60 degrees
    assert r.rain[..., 0][rim].mean() < 0.7 * r.rain[..., 0][inner].mean()
    # no TIR at 40 degrees, Fresnel transmission still darkens the rim a little
    r40 = render(grey(), 0, lab_params(), drops=[[80, 80, 10, 40]])
    assert r40.params["tir_fraction"] == 0.0
    assert r40.rain[..., 0][rim].mean() <= r40.rain[..., 0][inner].mean()


def test_defocus_makes_alpha_soft():
    sharp = render(grey(), 0, lab_params(), drops=[[80, 80, 10, 45]])
    blurred = render(grey(), 0, lab_params(f_number=(4, 4)), drops=[[80, 80, 10, 45]])
    def soft(a):
        return int(((a > 0.02) & (a < 0.98)).sum())

    assert sharp.params["blur_radius_px"][0] < 0.5
    assert blurred.params["blur_radius_px"][0] > 5
    assert soft(blurred.alpha) > 5 * soft(sharp.alpha)
    assert abs(blurred.alpha.sum() - sharp.alpha.sum()) / sharp.alpha.sum() < 0.02  # blur keeps the mass
    np.testing.assert_array_equal(blurred.mask, sharp.mask)  # the footprint mask M is geometric


@pytest.mark.parametrize("change, name", [
    ({"coverage": (0.5, 0.1)}, "coverage"), ({"contact_angle_deg": (10, 95)}, "contact_angle_deg"),
    ({"glass_mm": (-5, 10)}, "glass_mm"), ({"merge_prob": 2.0}, "merge_prob"),
    ({"frame_px": 3}, "frame_px"), ({"scene_m": (0.1, 0.1), "glass_mm": (120, 200)}, "scene_m"),
    ({"f_number": (0, 2)}, "f_number"),
    ({"tilt_deg": (0, 89)}, "tilt_deg"), ({"radius_mm": ("a", 2)}, "radius_mm"),
])
def test_bad_params_raise_naming_the_parameter(change, name):
    with pytest.raises(ValueError, match=name):
        SynthParams(**change).validate()


def test_override_parsing():
    p = SynthParams().override(["coverage=0.1,0.2", "tilt_deg=30", "frame_px=none"])
    assert p.coverage == (0.1, 0.2) and p.tilt_deg == (30, 30) and p.frame_px is None
    with pytest.raises(ValueError, match="nope"):
        SynthParams().override(["nope=1"])
    with pytest.raises(ValueError, match="name=value"):
        SynthParams().override(["coverage"])
    assert SynthParams.from_dict(SynthParams().to_dict()) == SynthParams()


def test_render_rejects_bad_images():
    with pytest.raises(ValueError, match="uint8"):
        render(np.zeros((8, 8, 3), np.float32), 0)


def test_backgrounds(tmp_path):
    imgs = list(backgrounds(5, (32, 48), n=3))
    assert len(imgs) == 3 and all(i.shape == (32, 48, 3) and i.dtype == np.uint8 for i in imgs)
    again = list(backgrounds(5, (32, 48), n=3))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(imgs, again))
    scene = procedural_scene(np.random.default_rng(0), 40, 60)
    assert scene.shape == (40, 60, 3) and scene.std() > 5  # not a flat image
    from PIL import Image

    Image.fromarray(np.full((20, 30, 3), 77, np.uint8)).save(tmp_path / "a.png")
    src = BackgroundSource(tmp_path)
    out = src.sample(np.random.default_rng(0), 16)
    assert out.shape == (16, 16, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        BackgroundSource(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BackgroundSource(tmp_path / "missing")


def test_view_fraction_zooms_into_the_background():
    """A smaller ``view`` shows less of the photo at the same output size: a smoother clean image
    (less gradient energy on average)."""
    def grad_energy(view):
        total = 0.0
        for i in range(12):
            c = make_pair(3, i, 48, SynthParams(view=view)).clean.astype(np.float64)
            total += np.abs(np.diff(c, axis=0)).mean() + np.abs(np.diff(c, axis=1)).mean()
        return total

    assert grad_energy((0.15, 0.2)) < 0.8 * grad_energy((0.9, 1.0))
    with pytest.raises(ValueError, match="view"):
        SynthParams(view=(0.0, 0.5)).validate()
