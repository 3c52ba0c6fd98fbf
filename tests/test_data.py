"""agan.data: the Raindrop folder reader (agan.data.layout's pairing and errors; crops, masks), synthetic
data, build_dataset, and the ``agan synth`` command."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from agan.cli import main
from agan.config import Config
from agan.data.datasets import RaindropPairs, SyntheticRaindrops, build_dataset
from agan.synth.renderer import make_pair
from tests.conftest import SHARED_REAL


def save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def pair_image(i: int, h: int = 30, w: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """clean = flat grey 10*i; rain = clean + 40 in a 5x5 top-left block (a 'drop')."""
    clean = np.full((h, w, 3), 10 * i, np.uint8)
    rain = clean.copy()
    rain[:5, :5] += 40
    return rain, clean


def make_folder(root: Path, ids=(2, 10, 1), h=30, w=42, ext="png") -> Path:
    for i in ids:  # written in an odd order on purpose
        rain, clean = pair_image(i, h, w)
        save(root / "data" / f"{i}_rain.{ext}", rain)
        save(root / "gt" / f"{i}_clean.{ext}", clean)
    return root


def test_pairs_by_numeric_id(tmp_path):
    ds = RaindropPairs(make_folder(tmp_path))
    assert ds.ids == ["1", "2", "10"]  # numeric order, not "1", "10", "2"
    for k, i in enumerate([1, 2, 10]):
        item = ds[k]
        assert item["id"] == str(i)
        assert item["rain"].dtype == torch.float32 and item["rain"].shape == (3, 28, 40)  # multiple of 4
        assert torch.allclose(item["clean"], torch.full((3, 28, 40), 10 * i / 255.0))
        assert item["mask"].shape == (1, 28, 40)
        assert item["mask"][0, :5, :5].all() and item["mask"].sum() == 25  # M: docs/paper.md#raindrop-mask


def test_jpg_and_split_layout(tmp_path):
    make_folder(tmp_path / "train", ids=(0, 3), ext="jpg")
    ds = RaindropPairs(tmp_path, split="train")
    assert len(ds) == 2 and ds.ids == ["0", "3"]
    with pytest.raises(FileNotFoundError, match="pass split"):
        RaindropPairs(tmp_path)
    with pytest.raises(FileNotFoundError, match="test_a"):
        RaindropPairs(tmp_path, split="test_a")


def test_error_missing_partner(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "gt" / "10_clean.png").unlink()
    with pytest.raises(ValueError, match=r"10_rain\.png: no partner .*10_clean\.png"):
        RaindropPairs(tmp_path)
    (tmp_path / "data" / "10_rain.png").unlink()
    save(tmp_path / "gt" / "7_clean.png", pair_image(7)[1])
    with pytest.raises(ValueError, match=r"7_clean\.png: no partner .*7_rain\.png"):
        RaindropPairs(tmp_path)


def test_error_unreadable_file(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "data" / "2_rain.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"2_rain\.png: unreadable"):
        RaindropPairs(tmp_path)


def test_error_size_mismatch(tmp_path):
    make_folder(tmp_path)
    save(tmp_path / "gt" / "1_clean.png", np.zeros((31, 42, 3), np.uint8))
    with pytest.raises(ValueError, match=r"1_rain\.png .*1_clean\.png.*sizes differ"):
        RaindropPairs(tmp_path)


def test_error_duplicated_id(tmp_path):
    make_folder(tmp_path)
    save(tmp_path / "data" / "2_rain.jpg", pair_image(2)[0])
    with pytest.raises(ValueError, match=r"duplicated id 2"):
        RaindropPairs(tmp_path)


def test_error_empty_or_wrong_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "gt").mkdir()
    with pytest.raises(FileNotFoundError, match="hold no images.*expected"):
        RaindropPairs(tmp_path)
    wrong = tmp_path / "wrong"
    save(wrong / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"no paired folders.*<root>/data/N_rain\.png.*rain/\+clean"):
        RaindropPairs(wrong)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RaindropPairs(tmp_path / "nowhere")
    save(tmp_path / "data" / "rainy_one.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"rainy_one\.png: unexpected file name"):
        RaindropPairs(tmp_path)


@pytest.mark.parametrize("rain_dir,clean_dir,rain_name,clean_name", [
    ("rain", "clean", "{}_rain.png", "{}_clean.png"),  # as ../shared/real/train_pairs
    ("input", "target", "{}.png", "{}.png"),
    ("input", "gt", "{}_input.jpg", "{}.png"),
])
def test_other_pair_layouts(tmp_path, rain_dir, clean_dir, rain_name, clean_name):
    from agan.data.layout import PAIR_LAYOUTS

    assert (rain_dir, clean_dir) in PAIR_LAYOUTS  # one list of layouts for agan eval and training
    for root in (tmp_path / "flat", tmp_path / "split" / "test_a"):
        for i in (2, 10, 1):
            rain, clean = pair_image(i)
            save(root / rain_dir / rain_name.format(i), rain)
            save(root / clean_dir / clean_name.format(i), clean)
    ds = RaindropPairs(tmp_path / "flat")
    assert ds.ids == ["1", "2", "10"] and ds.rain_dir == tmp_path / "flat" / rain_dir
    item = ds[2]
    assert item["rain"].shape == (3, 28, 40) and item["mask"].sum() == 25
    assert torch.allclose(item["clean"], torch.full((3, 28, 40), 100 / 255.0))
    assert RaindropPairs(tmp_path / "split", split="test_a").ids == ["1", "2", "10"]
    with pytest.raises(FileNotFoundError, match=r"pass split"):
        RaindropPairs(tmp_path / "split")
    # validation on full images of any size (--val-data), the split folder found by itself
    cfg = Config.preset("cpu", crop_size=32, val_size=0)
    val = build_dataset(cfg.replace(val_data=str(tmp_path / "flat")), "val")
    assert len(val) == 3 and val[0]["rain"].shape == (3, 28, 40)
    val = build_dataset(cfg.replace(val_data=str(tmp_path / "split")), "val")
    assert len(val) == 3 and val.base == tmp_path / "split" / "test_a"
    (tmp_path / "flat" / clean_dir / clean_name.format(10)).unlink()
    with pytest.raises(ValueError, match=rf"{rain_name.format(10)}: no partner .*{clean_name.format(10)}"):
        RaindropPairs(tmp_path / "flat")


@pytest.mark.skipif(not (SHARED_REAL / "train_pairs").is_dir(), reason="no ../shared/real/train_pairs")
def test_shared_real_pairs_validate_at_full_size():
    cfg = Config.preset("cpu", crop_size=32, val_size=0, val_data=str(SHARED_REAL / "train_pairs"))
    val = build_dataset(cfg, "val")
    assert len(val) >= 1 and val.rain_dir.name == "rain" and val.clean_dir.name == "clean"
    item = val[0]
    h, w = item["rain"].shape[1:]
    assert h > 32 and w > 32 and h % 4 == 0 and w % 4 == 0 and item["clean"].shape == item["rain"].shape


def test_random_crops_flip_and_crop_size_check(tmp_path):
    root = tmp_path / "d"
    rng = np.random.default_rng(0)
    for i in range(2):
        clean = rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)
        save(root / "data" / f"{i}_rain.png", clean)
        save(root / "gt" / f"{i}_clean.png", clean)
    a = RaindropPairs(root, crop_size=16, flip=True, seed=1)
    b = RaindropPairs(root, crop_size=16, flip=True, seed=1)
    c = RaindropPairs(root, crop_size=16, flip=True, seed=2)
    assert a[0]["rain"].shape == (3, 16, 16)
    assert torch.equal(a[0]["rain"], b[0]["rain"])  # deterministic given seed and index
    assert any(not torch.equal(a[k]["rain"], c[k]["rain"]) for k in range(2))
    a.set_epoch(1)
    assert any(not torch.equal(a[k]["rain"], b[k]["rain"]) for k in range(2))
    # the crop is a real crop of the image (or its mirror image)
    full = torch.from_numpy(np.array(Image.open(root / "gt" / "0_clean.png"))).permute(2, 0, 1).float() / 255
    crop = b[0]["clean"]
    windows = full.unfold(1, 16, 1).unfold(2, 16, 1)  # (3, 25, 37, 16, 16)
    found = [(windows - c_[:, None, None]).abs().amax(dim=(0, 3, 4)).min() < 1e-6
             for c_ in (crop, crop.flip(-1))]
    assert any(found)
    with pytest.raises(ValueError, match="smaller than crop_size 64"):
        RaindropPairs(root, crop_size=64)


def test_mask_threshold_and_dilation(tmp_path):
    clean = np.full((12, 12, 3), 100, np.uint8)
    rain = clean.copy()
    rain[4, 4, 1] = 130  # exactly 30: in M
    rain[8, 8, 2] = 129  # 29: not in M
    save(tmp_path / "data" / "0_rain.png", rain)
    save(tmp_path / "gt" / "0_clean.png", clean)
    m = RaindropPairs(tmp_path)[0]["mask"][0]
    assert m[4, 4] == 1 and m[8, 8] == 0 and m.sum() == 1
    md = RaindropPairs(tmp_path, mask_dilate=True)[0]["mask"][0]
    assert md.sum() == 9 and md[3:6, 3:6].all()
    assert RaindropPairs(tmp_path, mask_threshold=29)[0]["mask"].sum() == 2


def test_synthetic_dataset_is_deterministic_and_matches_make_pair():
    ds = SyntheticRaindrops(5, 32, seed=4)
    item = ds[3]
    assert set(item) == {"rain", "clean", "mask", "id", "alpha"}
    assert item["rain"].shape == (3, 32, 32) and item["alpha"].shape == (1, 32, 32)
    assert torch.equal(item["rain"], SyntheticRaindrops(5, 32, seed=4)[3]["rain"])
    res = make_pair(4, 3, 32)
    assert torch.equal(item["rain"], torch.from_numpy(res.rain).permute(2, 0, 1).float() / 255)
    assert torch.equal(item["mask"][0], torch.from_numpy(res.diff_mask.astype(np.float32)))
    with pytest.raises(IndexError):
        ds[5]


def test_build_dataset_synthetic_and_folder(tmp_path):
    cfg = Config.preset("cpu", crop_size=32, iterations=10, batch_size=2, val_size=3, seed=5)
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert isinstance(train, SyntheticRaindrops) and len(train) == 1000 and train.seed == 5
    assert isinstance(val, SyntheticRaindrops) and len(val) == 3 and val.seed == 5 + 1_000_003
    assert train[0]["rain"].shape == (3, 32, 32)
    make_folder(tmp_path / "train", ids=(0, 1, 2), h=40, w=48)
    make_folder(tmp_path / "test_a", ids=(5, 6), h=38, w=50)
    cfg = cfg.replace(data=str(tmp_path), val_data=str(tmp_path), val_size=1)
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert isinstance(train, RaindropPairs) and len(train) == 3 and train[0]["rain"].shape == (3, 32, 32)
    assert isinstance(val, RaindropPairs) and len(val) == 1 and val[0]["rain"].shape == (3, 36, 48)
    with pytest.raises(ValueError, match="split"):
        build_dataset(cfg, "test")


def test_cli_synth_layout_and_overwrite(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["synth", "--out", str(out), "--n", "3", "--size", "24x32", "--seed", "2",
                 "--param", "coverage=0.3"]) == 0
    for i in range(3):
        for sub, suffix in (("data", "rain"), ("gt", "clean"), ("mask", "mask")):
            assert (out / sub / f"{i}_{suffix}.png").is_file()
    import json

    meta = json.loads((out / "params.json").read_text())
    assert meta["n"] == 3 and meta["params"]["coverage"] == [0.3, 0.3]
    assert set(meta["images"]) == {"0", "1", "2"}
    ds = RaindropPairs(out)  # the reader reads the synth layout
    assert len(ds) == 3 and ds[0]["rain"].shape == (3, 24, 32)
    from agan.synth import SynthParams

    params = {**SynthParams().to_dict(), "coverage": [0.3, 0.3]}
    assert torch.equal(ds[1]["rain"], SyntheticRaindrops(3, (24, 32), seed=2, params=params)[1]["rain"])
    before = (out / "data" / "0_rain.png").read_bytes()
    assert main(["synth", "--out", str(out), "--n", "2", "--seed", "9"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "data" / "0_rain.png").read_bytes() == before
    assert main(["synth", "--out", str(out), "--n", "2", "--size", "24x32", "--seed", "9",
                 "--overwrite"]) == 0
    assert not (out / "data" / "2_rain.png").exists()  # stale pairs of the old run are gone
    assert main(["synth", "--out", str(tmp_path / "x"), "--param", "tilt_deg=99"]) == 2
    assert "tilt_deg" in capsys.readouterr().err


def test_mask_source_drops_marks_the_drawn_drop_layer_not_the_difference():
    from agan.data.datasets import DROP_MASK_ALPHA, SyntheticRaindrops
    from agan.images import difference_mask

    params = {"haze": [0.3, 0.3], "frame_px": 240}  # a strong veil: the difference mask marks it too
    diff = SyntheticRaindrops(2, 48, seed=3, params=params)[0]
    drops = SyntheticRaindrops(2, 48, seed=3, params=params, mask_source="drops")[0]
    assert torch.equal(diff["rain"], drops["rain"])  # same pair, only M differs
    assert torch.equal(drops["mask"], (drops["alpha"] >= DROP_MASK_ALPHA).float())
    assert torch.equal(diff["mask"], difference_mask(diff["rain"], diff["clean"]))
    assert not torch.equal(diff["mask"], drops["mask"])
    with pytest.raises(ValueError, match="mask_source"):
        SyntheticRaindrops(2, 48, mask_source="alpha")


def test_clean_fraction_gives_drop_free_pairs_whose_target_is_the_input():
    """Config.clean_fraction: that share of the synthetic training pairs has no drop (rain = clean, M = 0),
    chosen per item from (seed, i): the same items on every run and after a resume; the others unchanged."""
    plain = SyntheticRaindrops(40, 32, seed=5, mask_source="drops")
    some = SyntheticRaindrops(40, 32, seed=5, mask_source="drops", clean_fraction=0.3)
    free = [i for i in range(40) if some.drop_free(i)]
    assert 4 <= len(free) <= 20 and free == [i for i in range(40) if some.drop_free(i)]
    for i in range(40):
        a, b = plain[i], some[i]
        assert torch.equal(a["clean"], b["clean"])
        if i in free:
            assert torch.equal(b["rain"], b["clean"]) and b["mask"].sum() == 0 and b["alpha"].sum() == 0
        else:
            assert all(torch.equal(a[k], b[k]) for k in ("rain", "mask", "alpha"))
    cfg = Config.preset("cpu", iterations=10, clean_fraction=0.25)
    assert build_dataset(cfg, "train").clean_fraction == 0.25
    assert build_dataset(cfg, "val").clean_fraction == 0.0  # the held-out split keeps its drops
    with pytest.raises(ValueError, match="clean_fraction"):
        Config.preset("cpu", clean_fraction=1.0)
