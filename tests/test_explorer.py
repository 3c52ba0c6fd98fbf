"""agan.viz.explorer: the callbacks of notebook 08, called directly, and agan.viz.photos: one's own photos
derained whole (no widgets needed except the explorer's and the upload button's tests)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from agan.images import to_tensor
from agan.models import Generator
from agan.viz import explorer as ex
from agan.viz import photos as ph


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return Generator(width=0.125, steps=3).eval()


def test_list_examples_synthetic_and_real_without_clean(tmp_path):
    assert ex.list_examples(None, n_synthetic=2) == ["synthetic:0", "synthetic:1"]
    assert ex.list_examples(tmp_path / "absent", n_synthetic=1) == ["synthetic:0"]
    files = [("train_pairs/rain", "0_rain.png"), ("train_pairs/clean", "0_clean.png"), ("unpaired", "x.jpg")]
    for sub, name in files:
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / sub / name)
    names = ex.list_examples(tmp_path, n_synthetic=1)
    assert names[0] == "synthetic:0"
    # clean images are not inputs
    assert sorted(n.split("/")[-1] for n in names[1:]) == ["0_rain.png", "x.jpg"]


def test_load_example_synthetic_is_deterministic():
    rain, clean, exact = ex.load_example("synthetic:1", size=32, seed=3)
    assert rain.shape == clean.shape == (32, 32, 3) and rain.dtype == np.uint8
    assert exact.shape == (32, 32) and exact.dtype == bool
    again = ex.load_example("synthetic:1", size=32, seed=3)
    assert np.array_equal(rain, again[0]) and np.array_equal(clean, again[1])
    with pytest.raises(ValueError, match="synthetic:<index>"):
        ex.load_example("synthetic:x")
    with pytest.raises(FileNotFoundError, match="no such image"):
        ex.load_example("/nowhere/0_rain.png")


def test_load_example_file_finds_its_clean_partner_and_fits(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "rain").mkdir()
    (tmp_path / "clean").mkdir()
    img = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "rain" / "7_rain.png")
    Image.fromarray(img[::-1]).save(tmp_path / "clean" / "7_clean.png")
    rain, clean, exact = ex.load_example(str(tmp_path / "rain" / "7_rain.png"), size=200)
    assert rain.shape == (48, 68, 3)  # cropped to a multiple of 4, not resized (smaller than size)
    assert np.array_equal(rain, img[:48, :68]) and np.array_equal(clean, img[::-1][:48, :68])
    assert exact is None
    small, _, _ = ex.load_example(str(tmp_path / "rain" / "7_rain.png"), size=35)
    assert max(small.shape[:2]) <= 35 and small.shape[0] % 4 == 0 and small.shape[1] % 4 == 0


def test_synthesise_fixes_drop_parameters_and_rejects_bad_ones():
    sparse = ex.synthesise(0, size=64, coverage=0.05, radius_mm=1.0)
    dense = ex.synthesise(0, size=64, coverage=0.5, radius_mm=1.0)
    assert dense.mask.mean() > sparse.mask.mean()
    assert sparse.params["coverage"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="unknown drop parameter"):
        ex.synthesise(0, size=32, wind=3)
    with pytest.raises(ValueError, match="coverage"):
        ex.synthesise(0, size=32, coverage=2.0)


def test_explore_runs_G_once_and_attention_at_matches_the_network(G):
    state = ex.explore("synthetic:0", G, size=32, device="cpu")
    assert state.rain.shape == (32, 32, 3) and state.output.shape == (32, 32, 3)
    assert len(state.attention) == 3 and state.clean is not None
    with torch.no_grad():
        direct = G(to_tensor(state.rain)[None].float())
    for t in (1, 2, 3):
        np.testing.assert_allclose(ex.attention_at(state, t), direct.attention[t - 1][0, 0].numpy(),
                                   atol=1e-5)
    for bad in (0, 4):
        with pytest.raises(ValueError, match=r"1\.\.3"):
            ex.attention_at(state, bad)
    no_att = ex.explore("synthetic:0", Generator(width=0.125, attentive=False).eval(), size=32, device="cpu")
    with pytest.raises(ValueError, match="no attention maps"):
        ex.attention_at(no_att, 1)


def test_difference_mask_at_thresholds_a_known_change():
    clean = np.full((10, 12, 3), 100, np.uint8)
    rain = clean.copy()
    rain[2:6, 3:7, 1] += 40  # a 4x4 square changed by 40 in one channel
    m, cov = ex.difference_mask_at(rain, clean, 30)
    assert m.sum() == 16 and m[2:6, 3:7].all() and cov == pytest.approx(16 / 120)
    assert ex.difference_mask_at(rain, clean, 41)[0].sum() == 0
    assert ex.difference_mask_at(rain, clean, 40)[0].sum() == 16  # >= threshold
    assert ex.difference_mask_at(rain, clean, 30, dilate=True)[0].sum() == 36
    with pytest.raises(ValueError, match="needs a pair"):
        ex.difference_mask_at(rain, None, 30)
    with pytest.raises(ValueError, match="0..255"):
        ex.difference_mask_at(rain, clean, 300)


def test_attention_mask_and_iou():
    A = np.array([[0.2, 0.6], [1.4, -0.1]])
    m, cov = ex.attention_mask_at(A, 0.5)
    assert m.tolist() == [[False, True], [True, False]] and cov == 0.5
    assert ex.mask_iou(m, np.array([[0, 1], [0, 0]], bool)) == 0.5
    assert ex.mask_iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    with pytest.raises(ValueError, match="shape"):
        ex.mask_iou(np.zeros((2, 2)), np.zeros((3, 2)))


def test_render_view_panels(G):
    state = ex.explore("synthetic:2", G, size=32, device="cpu")
    fig = ex.render_view(state, t=2, threshold=30)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1] == "A_2" and titles[2].startswith("M (>= 30)") and "IoU" in titles[2]
    assert titles[-2:] == ["output O", "clean B"]
    plt.close(fig)
    unpaired = ex.ExplorerState("x", state.rain, state.output, state.attention)
    fig = ex.render_view(unpaired, t=3, level=0.25)
    assert [ax.get_title() for ax in fig.axes][2].startswith("A_3 >= 0.25")
    plt.close(fig)


def test_build_explorer_wires_the_callbacks(G):
    pytest.importorskip("ipywidgets")
    box = ex.build_explorer(G, examples=["synthetic:0", "synthetic:1"], size=32, device="cpu")
    widgets = {getattr(w, "description", ""): w
               for row in box.children for w in getattr(row, "children", [row])}
    assert widgets["time step t"].max == 3 and widgets["M threshold"].value == 30
    assert set(ex.DROP_PARAMETERS) <= set(widgets)
    widgets["time step t"].value = 1  # each change re-draws through the callbacks without error
    widgets["image"].value = "synthetic:1"
    widgets["use the drop parameters below (synthetic images)"].value = True
    widgets["coverage"].value = 0.4
    plt.close("all")


def test_explorer_opens_on_the_default_model(tmp_path, monkeypatch):
    """build_explorer() / explore() without a model use the kit's default model (agan.infer.shipped)."""
    pytest.importorskip("ipywidgets")
    import agan.infer.shipped as shipped
    from agan.checkpoint import atomic_save
    from agan.config import Config
    from agan.models import build_generator
    from agan.release import export_release

    monkeypatch.setattr(shipped, "DEFAULT_WEIGHTS", tmp_path / "absent.safetensors")
    with pytest.raises(FileNotFoundError, match="default model is not installed"):
        ex.build_explorer(examples=["synthetic:0"], size=32, device="cpu")
    cfg = Config.preset("cpu", width=0.125, steps=2)
    torch.manual_seed(0)
    atomic_save({"format": "agan-generator", "version": 1, "config": cfg.to_dict(), "step": 2,
                 "G": build_generator(cfg).state_dict()}, tmp_path / "generator.pt")
    monkeypatch.setattr(shipped, "DEFAULT_WEIGHTS", export_release(tmp_path / "generator.pt",
                                                                    tmp_path / "weights", {}))
    state = ex.explore("synthetic:0", size=32, device="cpu")
    assert len(state.attention) == 2 and state.output.shape == (32, 32, 3)
    box = ex.build_explorer(examples=["synthetic:0"], size=32, device="cpu")
    widgets = {getattr(w, "description", ""): w
               for row in box.children for w in getattr(row, "children", [row])}
    assert widgets["time step t"].max == 2  # the default model's N
    plt.close("all")


def _png_bytes(img: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_find_photos_file_folder_and_raindrop_layouts(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)

    def put(sub: str, name: str) -> None:
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / sub / name)

    put("one", "a.jpg")
    assert ph.find_photos(tmp_path / "one" / "a.jpg") == [(tmp_path / "one" / "a.jpg", None)]
    assert ph.find_photos(tmp_path / "one") == [(tmp_path / "one" / "a.jpg", None)]
    (tmp_path / "one" / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="not an image file"):
        ph.find_photos(tmp_path / "one" / "notes.txt")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        ph.find_photos(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        ph.find_photos(tmp_path / "empty")
    # inputs only (a Raindrop test folder without its gt/): the data/ sub-folder's photos, unpaired
    put("inputs/data", "2_rain.png")
    put("inputs/data", "1_rain.png")
    assert ph.find_photos(tmp_path / "inputs") == [(tmp_path / "inputs/data/1_rain.png", None),
                                                  (tmp_path / "inputs/data/2_rain.png", None)]
    # the Raindrop layout, directly and in a split folder: rainy photos with their clean partners
    for root in ("paired", "dataset/test_a"):
        put(f"{root}/data", "3_rain.png")
        put(f"{root}/gt", "3_clean.png")
    assert ph.find_photos(tmp_path / "paired") == [(tmp_path / "paired/data/3_rain.png",
                                                   tmp_path / "paired/gt/3_clean.png")]
    assert ph.find_photos(tmp_path / "dataset") == [(tmp_path / "dataset/test_a/data/3_rain.png",
                                                    tmp_path / "dataset/test_a/gt/3_clean.png")]


def test_read_upload_both_ipywidgets_formats():
    assert ph.read_upload(()) == [] and ph.read_upload({}) == []
    v8 = ({"name": "a.png", "type": "image/png", "size": 3, "content": memoryview(b"abc")},)
    v7 = {"b.jpg": {"metadata": {"name": "b.jpg"}, "content": b"xyz"}}
    assert ph.read_upload(v8) == [("a.png", b"abc")]
    assert ph.read_upload(v7) == [("b.jpg", b"xyz")]


def test_derain_photo_matches_derain_and_reads_uploads(G):
    from agan.infer.pipeline import derain

    rain, clean, _ = ex.load_example("synthetic:0", size=40)
    state = ph.derain_photo(rain, G, device="cpu", clean=clean, name="test")
    O, maps = derain(rain.astype(np.float32) / 255.0, model=G, device="cpu")
    np.testing.assert_array_equal(state.output, O)
    assert len(state.attention) == 3 and np.array_equal(state.attention[-1], maps[-1])
    from_bytes = ph.derain_photo(("x.png", _png_bytes(rain)), G, device="cpu")
    assert from_bytes.name == "x.png" and np.array_equal(from_bytes.rain, rain)
    np.testing.assert_array_equal(from_bytes.output, O)
    line = ph.photo_summary(state)
    assert line.startswith("test (40x40)") and "A_N >= 0.5 on" in line and " dB" in line
    assert " dB" not in ph.photo_summary(from_bytes)  # no clean partner: no score
    with pytest.raises(ValueError, match="differs in size"):
        ph.derain_photo(rain, G, device="cpu", clean=clean[:20])
    with pytest.raises(ValueError, match="uint8"):
        ph.derain_photo(rain.astype(np.float32), G, device="cpu")


def test_build_upload_derains_an_uploaded_photo(G, capsys):
    pytest.importorskip("ipywidgets")
    box = ph.build_upload(G, device="cpu")
    upload = next(w for w in box.children if type(w).__name__ == "FileUpload")
    assert capsys.readouterr().out == ""  # nothing runs before an upload
    rain = ex.load_example("synthetic:1", size=32)[0]
    import datetime

    content = _png_bytes(rain)  # what a browser sends (ipywidgets 8's value: a tuple of dicts)
    upload.value = ({"name": "mine.png", "type": "image/png", "size": len(content),
                     "last_modified": datetime.datetime.now(datetime.timezone.utc),
                     "content": memoryview(content)},)
    text = capsys.readouterr().out  # outside a kernel the Output widget lets its prints through
    assert "mine.png (32x32); A_N >= 0.5 on" in text and "error" not in text
    assert "Figure(" in text  # render_view's figure was displayed
    upload.value = ({"name": "notes.png", "type": "image/png", "size": 3,
                     "last_modified": datetime.datetime.now(datetime.timezone.utc),
                     "content": memoryview(b"abc")},)
    bad = capsys.readouterr().out  # a file that is no image: one error line, no traceback
    assert "error:" in bad and "not an image file" in bad
    plt.close("all")
