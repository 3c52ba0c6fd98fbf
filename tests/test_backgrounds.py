"""The bundled clean backgrounds (agan/assets/backgrounds): present, licensed, small, and drawn by the
default BackgroundSource deterministically."""

import re
import warnings

import numpy as np
import pytest

import agan.synth.backgrounds as bg
from agan.synth.backgrounds import BUNDLED_DIR, BackgroundSource, backgrounds, bundled_photos

# licences that allow redistribution of (modified) copies, as spelled in the README's table
FREE_LICENCES = {"CC0-1.0", "CC-BY-2.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "GPL-2.0-or-later",
                 "LGPL-3.0", "public-domain"}


def _readme_table() -> dict[str, list[str]]:
    """File -> its row's cells (source, author, licence) from the README's attribution table."""
    rows = {}
    for line in (BUNDLED_DIR / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"[\w.-]+\.(jpe?g|png)", cells[0]):
            rows[cells[0]] = cells[1:]
    return rows


def test_bundle_has_enough_licensed_photos():
    files = bundled_photos()
    assert len(files) >= 15
    assert all(n.lower().endswith((".jpg", ".jpeg", ".png")) for n in files)
    table = _readme_table()
    assert set(table) == set(files), "every bundled image, and only those, has a row in README.md"
    for name, (source, author, licence) in table.items():
        assert source and author, name
        assert licence in FREE_LICENCES, f"{name}: {licence!r}"
        # each licence named in the table has its text (name and URL) in the README too
    readme = (BUNDLED_DIR / "README.md").read_text(encoding="utf-8")
    for licence in {row[2] for row in table.values()}:
        assert re.search(rf"^\| {re.escape(licence)} \| .*https://", readme, re.M), licence


def test_bundle_is_small_and_decodes():
    files = sorted(BUNDLED_DIR.iterdir())
    assert sum(p.stat().st_size for p in files) <= 4 * 2 ** 20
    for name in bundled_photos():
        img = bg._bundled_photo(BUNDLED_DIR / name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert max(img.shape[:2]) <= 720 and min(img.shape[:2]) >= 300, name
        assert img.std() > 10, f"{name}: nearly flat"


def test_default_source_mixes_bundled_skimage_procedural():
    src = BackgroundSource()
    assert src.mix == pytest.approx((bg.MIX_BUNDLED, bg.MIX_SKIMAGE, bg.MIX_PROCEDURAL)) or not src.photos
    assert "bundled photos" in src.describe() and "procedural" in src.describe()
    kinds = [src.sample_with_origin(np.random.default_rng([s, 0]), (24, 36))[1].split(":")[0]
             for s in range(50)]
    assert set(kinds) <= {"bundled", "skimage", "procedural"}
    assert kinds.count("bundled") >= 20  # 0.6 of 50 expected; P(< 20) is tiny, and the seeds are fixed
    assert "procedural" in kinds


def test_sample_with_origin_is_sample():
    src = BackgroundSource()
    for s in range(8):
        a = src.sample(np.random.default_rng(s), (20, 30), view=(0.3, 0.6))
        b, origin = src.sample_with_origin(np.random.default_rng(s), (20, 30), view=(0.3, 0.6))
        assert a.tobytes() == b.tobytes() and origin


def test_default_source_is_deterministic():
    src, other = BackgroundSource(), BackgroundSource()
    for s in range(12):
        a = src.sample(np.random.default_rng([7, s, 0]), (32, 48))
        b = other.sample(np.random.default_rng([7, s, 0]), (32, 48))
        assert a.shape == (32, 48, 3) and a.dtype == np.uint8 and a.tobytes() == b.tobytes()
    first = list(backgrounds(3, (16, 24), n=6))
    assert all(x.tobytes() == y.tobytes() for x, y in zip(first, backgrounds(3, (16, 24), n=6)))
    # item i depends only on (seed, i): a longer stream starts with the same items
    assert all(x.tobytes() == y.tobytes() for x, y in zip(first[:3], backgrounds(3, (16, 24), n=3)))


def test_bundled_origin_draws_that_photo():
    src = BackgroundSource(mix=(1.0, 0.0, 0.0))
    origins = {src.sample_with_origin(np.random.default_rng(s), 16)[1] for s in range(30)}
    assert all(o.startswith("bundled:") for o in origins) and len(origins) > 5


def test_missing_bundle_falls_back_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.setattr(bg, "BUNDLED_DIR", tmp_path / "trimmed")
    with pytest.warns(UserWarning, match="bundled background photos are missing"):
        src = BackgroundSource()
    assert src.bundled == [] and "bundled photos missing" in src.describe()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, not on every source
        again = BackgroundSource()
    kinds = {src.sample_with_origin(np.random.default_rng(s), 16)[1].split(":")[0] for s in range(40)}
    assert kinds <= {"skimage", "procedural"} and "procedural" in kinds
    for s in range(10):  # the old mix: the same draws and images as before the bundle existed
        rng = np.random.default_rng(s)
        if src.photos and rng.random() < 0.5:
            img = bg._skimage_photo(src.photos[int(rng.integers(len(src.photos)))])
        else:
            img = bg._procedural_bank(int(rng.integers(bg.N_PROCEDURAL)))
        old = bg._jitter(rng, bg._crop_resize(rng, img, 16, 16, (0.5, 1.0)))
        assert again.sample(np.random.default_rng(s), 16).tobytes() == old.tobytes()


def test_folder_source_unchanged(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((20, 30, 3), 77, np.uint8)).save(tmp_path / "a.png")
    out, origin = BackgroundSource(tmp_path).sample_with_origin(np.random.default_rng(0), 16)
    assert out.shape == (16, 16, 3) and origin == f"folder:{tmp_path / 'a.png'}"
    assert BackgroundSource(str(tmp_path)).describe() == str(tmp_path)


def test_bad_mix_rejected():
    with pytest.raises(ValueError, match="mix"):
        BackgroundSource(mix=(-0.1, 0.5, 0.6))
