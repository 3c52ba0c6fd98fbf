"""agan.experiments.figures / results / attention: results computed once, one function per figure, Table 1,
the attention scores of Fig. 3 and the weights each figure records -- on a tiny exported release and tiny
fake ablation runs."""

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

import agan.infer.shipped as shipped
from agan import Config
from agan.checkpoint import atomic_save
from agan.experiments import figures as F
from agan.experiments import results as R
from agan.experiments.attention import ATTENTION_THRESHOLD, attention_scores
from agan.experiments.table1 import row_dir
from agan.infer.shipped import sha256_file
from agan.models import build_generator
from agan.release import export_release

SIZE = (32, 48)  # a whole 3:2 frame, small


def _fake_run(folder, variant="AA+AD", model="agan", step=3, **kw):
    cfg = Config.preset("cpu", variant=variant, model=model, width=0.125, iterations=step, **kw)
    torch.manual_seed(0)
    G = build_generator(cfg)
    atomic_save({"format": "agan-generator", "version": 1, "config": cfg.to_dict(), "step": step,
                 "G": G.state_dict()}, folder / "checkpoints" / "generator.pt")
    cfg.save(folder / "config.json")
    return G


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A tiny release (derain_size 24: G runs on the 32x48 frames reduced to 16x24) in a temp folder."""
    d = tmp_path_factory.mktemp("release")
    (d / "run" / "checkpoints").mkdir(parents=True)
    _fake_run(d / "run", step=7, steps=2, derain_size=24, mask_source="drops")
    return export_release(d / "run" / "checkpoints" / "generator.pt", d / "out", {"seed": 0, "iterations": 7})


@pytest.fixture(scope="module")
def ablate(tmp_path_factory):
    ab = tmp_path_factory.mktemp("ablate")
    runs = (("Eigen13", "AA+AD", "eigen13"), ("A", "A", "agan"), ("AA+AD", "AA+AD", "agan"))
    for row, variant, model in runs:
        d = row_dir(ab, row) / "train"
        (d / "checkpoints").mkdir(parents=True)
        _fake_run(d, variant, model)
    measured = {"A": {"psnr": 20.0, "psnr_std": None, "ssim": 0.6, "ssim_std": None, "n_seeds": 1},
                "AA+AD": {"psnr": 21.5, "psnr_std": None, "ssim": 0.7, "ssim_std": None, "n_seeds": 1},
                "input": {"psnr": 19.0, "ssim": 0.65, "n_seeds": 0}}
    info = {"preset": "cpu", "iterations": 3, "seeds": [0], "test_kind": "synthetic, 2 pairs"}
    (ab / "ablation.json").write_text(json.dumps({"info": info, "measured": measured}))
    return ab


# ---------------------------------------------------------------------------------------------- IoU / MSE
def test_attention_scores_known_answers():
    mask = np.zeros((20, 20), bool)
    mask[0:10, 0:10] = True
    # a map equal to the mask: IoU 1, MSE 0
    iou, mse = attention_scores(mask.astype(np.float32), mask)
    assert iou.tolist() == [1.0] and mse.tolist() == [0.0]
    # a square of 1 shifted by half its side: 50 px shared of 150 in the union; 100 of 400 px wrong by 1
    half = np.zeros((20, 20), np.float32)
    half[0:10, 5:15] = 1.0
    iou, mse = attention_scores(half, mask)
    assert iou[0] == pytest.approx(1 / 3) and mse[0] == pytest.approx(100 / 400)
    # steps (N, H, W): the threshold decides IoU (0.5 on; 0.4 off), the raw value the MSE
    steps = np.stack([mask * 0.5, mask * 0.4, np.zeros((20, 20)), mask * 2.0])
    iou, mse = attention_scores(steps, mask, threshold=0.5)
    assert iou.tolist() == pytest.approx([1.0, 0.0, 0.0, 1.0])
    assert mse.tolist() == pytest.approx([0.25 * 0.25, 0.36 * 0.25, 0.25, 1.0 * 0.25])
    # both empty: perfect agreement; mismatched shapes: an error
    assert attention_scores(np.zeros((4, 4)), np.zeros((4, 4), bool))[0].tolist() == [1.0]
    with pytest.raises(ValueError, match="same size"):
        attention_scores(np.zeros((2, 4, 4)), np.zeros((4, 5), bool))


def test_parse_size():
    assert R.parse_size("240x360") == (240, 360) == R.parse_size([240, 360]) == R.parse_size((240, 360))
    assert R.parse_size(64) == (64, 64)
    with pytest.raises(ValueError):
        R.parse_size("big")


# ---------------------------------------------------------------------------------------------- figures
def test_release_draws_the_model_figures_and_records_its_weights(kit, ablate, tmp_path):
    made = F.make_all(tmp_path, kit, ablate, n_images=2, size=SIZE, progress=False, n_score=3)
    res = R.load_results(tmp_path)
    meta = res["meta"]
    sha = json.loads(kit.with_suffix(".json").read_text())["sha256"]
    assert sha == sha256_file(kit)
    # the weights, as results.json records them and each figure's caption names them
    rec = meta["model"]
    assert rec["kind"] == "release" and rec["path"] == str(kit) and rec["sha256"] == sha
    assert rec["derain_size"] == rec["run_size"] == 24 and rec["working_size"] == [16, 24]
    assert rec["iterations"] == 7 and rec["mask_source"] == "drops"
    for fig in ("fig1_results.png", "fig3_attention.png", "fig4_multiscale.png", "fig6_comparison.png"):
        label = meta["drawn_from"][fig]["kit model"]
        assert sha[:12] in label and str(kit) in label
    assert set(meta["drawn_from"]["fig6_comparison.png"]) == {"Eigen13", "AA+AD", "kit model"}
    assert set(meta["drawn_from"]["fig7_ablation.png"]) == {"A", "AA+AD"}
    row = meta["row_weights"]["A"]
    assert row["kind"] == "checkpoint" and row["path"].endswith("A/s0/train/checkpoints/generator.pt")
    # derain_size 0: it runs at the frame its drops were drawn in
    assert row["run_size"] == Config.preset("cpu").synth["frame_px"]
    # whole frames with the synthesiser's defaults and frame_px = W
    from agan.data.datasets import DROP_MASK_ALPHA
    from agan.synth import SynthParams, make_pair
    from agan.synth.params import replace

    assert meta["size"] == [32, 48] and meta["synth"] == {"frame_px": 48}
    pair = make_pair(meta["seed"], 1, SIZE, replace(SynthParams(), frame_px=48))
    assert np.array_equal(res["rain"][1], pair.rain)
    assert np.array_equal(res["drop_mask"][1], pair.alpha >= DROP_MASK_ALPHA)
    # the stored outputs and maps are derain()'s at the model's scale
    from agan.infer.load import load_generator
    from agan.infer.pipeline import derain

    G, settings = load_generator(kit, device="cpu")
    assert settings.size == 24
    out, maps = derain(res["rain"][0].astype(np.float32) / 255, model=G, settings=settings, clip=False)
    assert res["model_A"].shape == (2, 2, 32, 48) and res["model_O"].shape == (2, 32, 48, 3)
    np.testing.assert_allclose(res["model_A"][0, 1], maps[1], rtol=1e-3, atol=1e-3)  # stored as float16
    assert np.abs(res["model_O"][0].astype(int) - np.rint(np.clip(out, 0, 1) * 255)).max() <= 1
    # S_1, S_2 of the 16x24 frame G runs at
    assert res["model_S1"].shape == (2, 4, 6, 3) and res["model_S2"].shape == (2, 8, 12, 3)
    # Fig. 3's scores: per step, the mean over the shown images of attention_scores against alpha >= 0.3
    att = meta["attention"]
    assert att["threshold"] == ATTENTION_THRESHOLD == 0.5 and att["steps"] == 2
    assert "alpha >= 0.3" in att["mask"]
    want = np.mean([attention_scores(res["model_A"][i].astype(np.float32), res["drop_mask"][i])[0]
                    for i in range(2)], axis=0)
    np.testing.assert_allclose(att["iou"], want, atol=2e-3)
    assert len(att["per_image"]["iou"]) == 3 and len(att["iou_held_out"]) == 2
    assert all(len(v) == 3 for v in meta["scores"].values())
    assert set(meta["scores"]) == {"input", "model", *meta["rows"]}
    assert meta["rows"] == ["Eigen13", "A", "AA+AD"] and res["rows_O"].shape == (3, 2, 32, 48, 3)
    for name in ("fig1", "fig3", "fig4", "fig6", "fig7"):
        assert made[name] is not None and made[name].read_bytes()[:4] == b"\x89PNG", name
    md = made["table1.md"].read_text()
    assert "| AA+AD |" in md and "31.57" in md and "21.50" in md and "preset `cpu`" in md
    # drawing again from the stored results needs no model
    again = F.make_all(tmp_path, recompute=False)
    assert again["fig3"] == made["fig3"]


def test_captions_name_the_weights(kit, tmp_path, monkeypatch):
    """Each figure writes a caption under itself (fig.text) that names the weights and its sha256."""
    R.compute_results(tmp_path, kit, None, n_images=1, size=SIZE, progress=False, n_score=1)
    results = R.load_results(tmp_path)
    captions = {}
    import agan.viz.plots as viz

    real_save = viz.save_figure

    def spy(fig, path, dpi=110):
        captions[path.name] = " ".join(" ".join(t.get_text() for t in fig.texts).split())  # wrapped: one line
        return real_save(fig, path, dpi)

    monkeypatch.setattr(viz, "save_figure", spy)
    for fn in (F.figure1, F.figure3, F.figure4, F.figure6):
        assert fn(results, tmp_path) is not None
    assert F.figure7(results, tmp_path) is None  # no ablation: nothing to compare
    sha = results["meta"]["model"]["sha256"]
    assert set(captions) == {"fig1_results.png", "fig3_attention.png", "fig4_multiscale.png",
                             "fig6_comparison.png"}
    for name, text in captions.items():
        assert "Look for:" in text and "Kit vs paper" in text and sha[:12] in text, name
    assert "IoU(A_t >= 0.5, M)" in captions["fig3_attention.png"]


def test_checkpoint_or_run_folder_as_weights(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    _fake_run(run, step=5)
    R.compute_results(tmp_path / "a", run, None, n_images=1, size=SIZE, progress=False, n_score=1)
    rec = R.load_results(tmp_path / "a")["meta"]["model"]
    ckpt = run / "checkpoints" / "generator.pt"
    assert rec["kind"] == "checkpoint" and rec["path"] == str(ckpt) and rec["sha256"] == sha256_file(ckpt)
    assert rec["iterations"] == 5 and rec["run_size"] == Config.preset("cpu").synth["frame_px"]


def test_without_weights_or_runs_the_model_figures_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "DEFAULT_WEIGHTS", tmp_path / "nowhere" / "agan-synthetic.safetensors")
    made = F.make_all(tmp_path / "figs", "", tmp_path / "no-ablation", n_images=1, size=16, progress=False,
                      n_score=1)
    assert all(made[k] is None for k in ("fig1", "fig3", "fig4", "fig6", "fig7"))
    meta = R.load_results(tmp_path / "figs")["meta"]
    assert meta["model"] is None and "default model" in meta["model_missing"]
    assert "is not installed" in meta["model_missing"]
    assert meta["drawn_from"] == {}
    assert "Paper numbers only" in made["table1.md"].read_text()
    with pytest.raises(FileNotFoundError, match="no results yet"):
        R.load_results(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="no such file"):  # a path asked for: never replaced
        R.compute_results(tmp_path, tmp_path / "missing.pt", size=16, n_score=1, progress=False)
    with pytest.raises(FileNotFoundError, match="without checkpoints/generator.pt"):
        R.compute_results(tmp_path, tmp_path / "figs", size=16, n_score=1, progress=False)


def test_attention_overlay():
    from agan.viz.plots import attention_overlay

    img = np.full((4, 6, 3), 128, np.uint8)
    A = np.zeros((4, 6))
    A[0, 0] = 1.0
    out = attention_overlay(img, A)
    assert out.shape == (4, 6, 3)
    np.testing.assert_allclose(out[1:, :], 128 / 255)  # A = 0: the image untouched
    assert not np.allclose(out[0, 0], 128 / 255)  # A = 1: the colour over it
    with pytest.raises(ValueError, match="differ in size"):
        attention_overlay(img, np.zeros((3, 3)))
