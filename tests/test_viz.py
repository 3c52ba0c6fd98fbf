"""agan.viz.plots: conversions, figures (drawn on the Agg backend), metrics logs; Table 1's formatting
(agan.experiments.table1) and the repository's folders (agan.viz.paths)."""

import csv
import io
import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from agan.experiments import table1
from agan.viz import plots as viz
from agan.viz.paths import project_paths


def test_to_display_accepts_tensor_batch_uint8_and_grey():
    t = torch.rand(3, 5, 7)
    a = viz.to_display(t)
    assert a.shape == (5, 7, 3)
    np.testing.assert_allclose(a, t.permute(1, 2, 0).numpy(), atol=1e-6)
    np.testing.assert_allclose(viz.to_display(t[None]), a)
    u8 = (np.arange(5 * 7 * 3) % 256).astype(np.uint8).reshape(5, 7, 3)
    np.testing.assert_allclose(viz.to_display(u8), u8 / 255.0)
    grey = np.linspace(-1, 2, 35).reshape(5, 7)  # out of range is clipped, grey is repeated
    g = viz.to_display(grey)
    assert g.shape == (5, 7, 3) and g.min() == 0.0 and g.max() == 1.0
    assert np.all(g[..., 0] == g[..., 2])
    with pytest.raises(ValueError, match="batch of 2"):
        viz.to_display(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="HxWx3"):
        viz.to_display(np.zeros((4, 4, 5)))


def test_attention_to_display_keeps_values_and_rejects_batches():
    A = torch.randn(1, 1, 6, 8) * 3  # A_t is not squashed: values outside [0, 1] must survive
    m = viz.attention_to_display(A)
    assert m.shape == (6, 8)
    np.testing.assert_allclose(m, A[0, 0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="one attention map"):
        viz.attention_to_display(torch.zeros(2, 1, 6, 8))


def test_attention_strip_panels_and_shared_scale():
    image = torch.rand(3, 16, 16)
    maps = [torch.full((1, 1, 16, 16), 0.5 * t) for t in range(1, 5)]  # A_4 = 2.0 sets vmax
    fig = viz.attention_strip(image, maps, mask=torch.ones(1, 16, 16), output=image)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["input I", "A_1", "A_2", "A_3", "A_4", "mask M", "output O"]
    clims = {fig.axes[i].images[0].get_clim() for i in range(1, 5)}
    assert clims == {(0.0, 2.0)}  # one colour scale for every step
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_image_grid_shapes_titles_and_maps(tmp_path):
    rows = [[torch.rand(3, 8, 8), np.zeros((8, 8)), None], [torch.rand(1, 3, 8, 8)]]
    fig = viz.image_grid(rows, col_titles=["I", "M", "x"], row_titles=["a", "b"])
    assert len(fig.axes) == 6
    assert fig.axes[0].get_title() == "I" and fig.axes[1].get_title() == "M"
    assert fig.axes[3].get_ylabel() == "b"
    assert fig.axes[1].images[0].get_array().ndim == 2  # a map drawn with a colour map
    assert not fig.axes[2].axison  # None -> blank panel
    path = viz.save_figure(fig, tmp_path / "sub" / "grid.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one"):
        viz.image_grid([])


def test_read_metrics_and_loss_curves(tmp_path):
    log = tmp_path / "metrics.jsonl"
    recs = [{"step": s, "L_G": 1.0 / s, "L_D": 1.3, "L_ATT": 0.1} for s in range(1, 6)]
    recs.append({"step": 5, "val_psnr": 24.0, "val_ssim": 0.8})
    log.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    assert viz.read_metrics(log) == recs
    fig = viz.plot_loss_curves(log)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["generator", "discriminator", "validation PSNR (dB)", "validation SSIM"]
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["L_G", "L_ATT"]
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [1.0 / s for s in range(1, 6)])
    val = viz.plot_loss_curves([{"step": 0, "split": "val", "psnr": 9.0, "psnr_input": 21.0}])
    assert [line.get_label() for line in val.axes[0].get_lines()] == ["output O", "rainy input I"]
    only = viz.plot_loss_curves(recs, keys=["L_D"])
    assert [ax.get_title() for ax in only.axes] == ["discriminator"]
    with pytest.raises(ValueError, match="no plottable"):
        viz.plot_loss_curves([{"step": 1, "note": "x"}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        viz.read_metrics(bad)
    with pytest.raises(FileNotFoundError, match="no metrics log"):
        viz.read_metrics(tmp_path / "missing.jsonl")


def test_loss_curves_show_the_real_pairs_beside_the_synthetic_validation(tmp_path):
    """metrics.jsonl of a run with Config.real_val: "split": "real" rows next to the "val" ones."""
    log = tmp_path / "metrics.jsonl"
    recs = [{"step": s, "L_G": 1.0, "L_D": 1.3} for s in (1, 2)]
    for s, (v, r) in zip((0, 2), ((20.0, 19.0), (22.0, 18.5))):
        recs.append({"step": s, "split": "val", "psnr": v, "ssim": 0.7, "psnr_input": 20.5,
                     "ssim_input": 0.72})
        recs.append({"step": s, "split": "real", "psnr": r, "ssim": 0.6, "psnr_input": 19.5,
                     "ssim_input": 0.65})
    log.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    fig = viz.plot_loss_curves(log)
    assert [ax.get_title() for ax in fig.axes] == ["generator", "discriminator", "validation PSNR (dB)",
                                                   "validation SSIM"]
    for ax in fig.axes[2:]:
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines) == ["val (synthetic)", "synthetic input", "real pairs", "real input"]
        assert [text.get_text() for text in ax.get_legend().get_texts()] == list(lines)
        assert lines["real input"].get_linestyle() == "--" and lines["real pairs"].get_linestyle() == "-"
        real_color = lines["real pairs"].get_color()
        assert lines["real input"].get_color() == real_color != lines["val (synthetic)"].get_color()
    psnr = {line.get_label(): line for line in fig.axes[2].get_lines()}
    np.testing.assert_allclose(psnr["val (synthetic)"].get_ydata(), [20.0, 22.0])  # the real rows stay apart
    np.testing.assert_allclose(psnr["real pairs"].get_ydata(), [19.0, 18.5])
    np.testing.assert_allclose(psnr["real pairs"].get_xdata(), [0, 2])
    np.testing.assert_allclose(psnr["real input"].get_ydata(), [19.5, 19.5])
    only = viz.plot_loss_curves(recs, keys=["real_psnr"])  # the real series are keys real_<key>
    assert [line.get_label() for line in only.axes[0].get_lines()] == ["real pairs"]
    old = viz.plot_loss_curves([r for r in recs if r.get("split") != "real"])  # a log from before real_val
    assert [line.get_label() for line in old.axes[2].get_lines()] == ["output O", "rainy input I"]


def test_loss_curves_with_two_sets_of_real_pairs_draw_each_apart():
    """Config.real_val with several folders: rows carry "set"; each set is its own pair of lines."""
    recs = [{"step": 1, "L_G": 1.0, "L_D": 1.3}]
    for s in (0, 2):
        recs.append({"step": s, "split": "val", "psnr": 20.0 + s, "ssim": 0.7, "psnr_input": 20.5,
                     "ssim_input": 0.72})
        for name, r in (("train_pairs", 19.0 + s), ("val_pairs", 17.0 - s)):
            recs.append({"step": s, "split": "real", "set": name, "psnr": r, "ssim": 0.6,
                         "psnr_input": 18.0, "ssim_input": 0.65})
    psnr = {line.get_label(): line for line in viz.plot_loss_curves(recs).axes[2].get_lines()}
    assert list(psnr) == ["val (synthetic)", "synthetic input", "real: train_pairs", "train_pairs input",
                          "real: val_pairs", "val_pairs input"]
    np.testing.assert_allclose(psnr["real: train_pairs"].get_ydata(), [19.0, 21.0])
    np.testing.assert_allclose(psnr["real: val_pairs"].get_ydata(), [17.0, 15.0])
    assert psnr["real: train_pairs"].get_color() != psnr["real: val_pairs"].get_color()
    assert psnr["val_pairs input"].get_color() == psnr["real: val_pairs"].get_color()
    one = [dict(r, set="train_pairs") for r in recs if r.get("set") != "val_pairs"]  # one set: as before
    assert "real pairs" in [line.get_label() for line in viz.plot_loss_curves(one).axes[2].get_lines()]


def test_table1_has_the_papers_numbers_and_the_kits():
    measured = {"AA+AD": {"psnr": 25.5, "psnr_std": 0.25, "ssim": 0.81, "ssim_std": 0.01},
                "A": (23.0, 0.7), "input": {"psnr": 21.0, "ssim": 0.75}}
    rows = table1.table1_rows(measured)
    assert [r["variant"] for r in rows] == ["Eigen13", "Pix2Pix", "A", "A+D", "A+AD", "AA+AD", "input"]
    full = rows[5]
    assert (full["paper_psnr"], full["paper_ssim"]) == (31.57, 0.9023)  # paper Table 1, docs/paper.md#table-1
    assert (full["kit_psnr"], full["kit_psnr_std"], full["kit_ssim"]) == (25.5, 0.25, 0.81)
    assert rows[2]["kit_psnr"] == 23.0 and rows[2]["kit_ssim_std"] is None
    assert rows[1]["kit_psnr"] is None

    md = table1.table1_markdown(measured, kit_label="cpu")
    assert "| AA+AD |" in md and "31.57" in md and "25.50 ± 0.25" in md and "cpu PSNR" in md
    assert md.count("\n") == 2 + 7

    parsed = list(csv.DictReader(io.StringIO(table1.table1_csv(measured))))
    assert parsed[0]["variant"] == "Eigen13" and parsed[0]["paper_psnr"] == "28.59"
    assert parsed[0]["kit_psnr"] == ""
    assert float(parsed[5]["kit_ssim"]) == 0.81
    with pytest.raises(ValueError, match="pair"):
        table1.table1_rows({"A": (1.0, 2.0, 3.0)})


def test_write_table1_and_project_paths(tmp_path):
    csv_path, md_path = table1.write_table1({"A+D": (20.0, 0.5)}, tmp_path / "figs", note="cpu preset")
    assert csv_path.read_text().splitlines()[0].startswith("variant,meaning,paper_psnr")
    assert md_path.read_text().startswith("cpu preset\n\n| variant")

    (tmp_path / "proj" / "agan").mkdir(parents=True)
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    (tmp_path / "proj" / "notebooks").mkdir()
    p = project_paths(tmp_path / "proj" / "notebooks")
    assert p.root == (tmp_path / "proj").resolve() and p.figures == p.root / "figures"
    assert p.real is None
    (tmp_path / "shared" / "real").mkdir(parents=True)
    assert project_paths(tmp_path / "proj").real == (tmp_path / "shared" / "real").resolve()
