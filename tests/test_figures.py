"""agan.figures: results computed once, one function per figure, Table 1 -- on tiny fake runs."""

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from agan import Config
from agan import figures as F
from agan.checkpoint import atomic_save
from agan.models import build_generator


def _fake_run(folder, variant="AA+AD", model="agan", step=3):
    cfg = Config.preset("cpu", variant=variant, model=model, width=0.125, iterations=step)
    torch.manual_seed(0)
    G = build_generator(cfg)
    atomic_save({"format": "agan-generator", "version": 1, "config": cfg.to_dict(), "step": step,
                 "G": G.state_dict()}, folder / "checkpoints" / "generator.pt")
    cfg.save(folder / "config.json")
    return G


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run = root / "cpu"
    (run / "checkpoints").mkdir(parents=True)
    G = _fake_run(run)
    ab = root / "ablate"
    for row, variant in (("A", "A"), ("AA+AD", "AA+AD")):
        d = ab / row.replace("+", "_") / "s0" / "train"
        (d / "checkpoints").mkdir(parents=True)
        _fake_run(d, variant)
    measured = {"A": {"psnr": 20.0, "psnr_std": None, "ssim": 0.6, "ssim_std": None, "n_seeds": 1},
                "AA+AD": {"psnr": 21.5, "psnr_std": None, "ssim": 0.7, "ssim_std": None, "n_seeds": 1},
                "input": {"psnr": 19.0, "ssim": 0.65, "n_seeds": 0}}
    info = {"preset": "cpu", "iterations": 3, "seeds": [0], "test_kind": "synthetic, 2 pairs"}
    (ab / "ablation.json").write_text(json.dumps({"info": info, "measured": measured}))
    return run, ab, G


def test_compute_results_once_then_every_figure(runs, tmp_path):
    run, ab, G = runs
    made = F.make_all(tmp_path, run, ab, n_images=2, size=32, progress=False, n_score=5)
    res = F.load_results(tmp_path)
    # 2 pairs shown, the means taken over 5: the first 2 of the scored pairs are the shown ones
    assert res["meta"]["n_score"] == 5 and all(len(v) == 5 for v in res["meta"]["scores"].values())
    assert res["rain"].shape == res["clean"].shape == (2, 32, 32, 3) and res["mask"].shape == (2, 32, 32)
    assert res["run_A"].shape == (2, 4, 32, 32) and res["run_S1"].shape == (2, 8, 8, 3)
    assert res["rows_O"].shape == (2, 2, 32, 32, 3) and res["meta"]["rows"] == ["A", "AA+AD"]
    assert res["meta"]["run"]["step"] == 3
    # the pairs are drawn with the run's own synthesiser settings (the cpu preset's frame_px / view)
    from agan.synth import SynthParams, make_pair

    # with the view scaled by size / crop_size (32 / 64), so that textures keep the scale of the run's crops
    cfg = Config.preset("cpu")
    synth = {**cfg.extra["synth"], "view": [v * 32 / cfg.crop_size for v in cfg.extra["synth"]["view"]]}
    assert res["meta"]["synth"] == synth
    assert np.array_equal(res["rain"][1], make_pair(res["meta"]["seed"], 1, 32, SynthParams.from_dict(synth)).rain)
    # the stored maps are the generator's own on the stored inputs
    with torch.no_grad():
        out = G(torch.from_numpy(res["rain"][:1]).permute(0, 3, 1, 2).float() / 255)
    A = out.attention[2][0, 0].numpy()
    np.testing.assert_allclose(res["run_A"][0, 2], A, rtol=1e-3, atol=1e-3)  # stored as float16
    assert res["run_O"].dtype == np.uint8
    expected = np.rint(np.clip(out.O[0].permute(1, 2, 0).numpy(), 0, 1) * 255)
    assert np.abs(res["run_O"][0].astype(int) - expected).max() <= 1  # clipped, rounded to uint8
    # scores follow the authors' protocol on the stored images
    from agan.evaluate import score_pair

    assert res["meta"]["scores"]["input"][1] == pytest.approx(list(score_pair(res["rain"][1], res["clean"][1])))
    for name in ("fig1", "fig3", "fig4", "fig6", "fig7"):
        assert made[name] is not None and made[name].read_bytes()[:4] == b"\x89PNG", name
    md = made["table1.md"].read_text()
    assert "| AA+AD |" in md and "31.57" in md and "21.50" in md and "preset `cpu`" in md
    csv_lines = made["table1.csv"].read_text().splitlines()
    assert csv_lines[0].startswith("variant,") and any(line.startswith("input,") for line in csv_lines)

    # drawing again from the stored results needs no model
    again = F.make_all(tmp_path, recompute=False)
    assert again["fig3"] == made["fig3"]


def test_fresh_clone_without_runs_skips_model_figures(tmp_path):
    made = F.make_all(tmp_path / "figs", tmp_path / "no-run", tmp_path / "no-ablation", n_images=1, size=16,
                      progress=False)
    assert all(made[k] is None for k in ("fig1", "fig3", "fig4", "fig6", "fig7"))
    assert "Paper numbers only" in made["table1.md"].read_text()
    with pytest.raises(FileNotFoundError, match="no results yet"):
        F.load_results(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="multiple of 4"):
        F.compute_results(tmp_path, size=30)
