"""The Table 1 driver (agan.experiments.ablate) on a tiny budget: rows train, score, tabulate, and resume."""

import csv
import json
import math
from pathlib import Path

import pytest

from agan.experiments.ablate import row_config, run_ablation, summarise
from agan.experiments.table1 import ROWS, order_agreement, row_dir, row_generator

TINY = ["width=0.0625", "disc_width=0.0625", "crop_size=32", "batch_size=2", "val_every=0", "sample_every=0",
        "log_every=1", "ckpt_every=2"]
KW = {"iterations": 2, "heldout_count": 2, "heldout_size": (32, 40), "overrides": TINY, "progress": False,
      "device": "cpu", "log": lambda *a: None}


@pytest.fixture(scope="module")
def tiny_ablation(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    table = run_ablation("cpu", 1, out, rows=["Eigen13", "Pix2Pix", "A"], **KW)
    return out, table


def test_rows_share_everything_but_the_model():
    cfgs = {r: row_config("cpu", r, 1, iterations=7, overrides=["lr_g=1e-4"]).to_dict() for r in ROWS}
    for r, c in cfgs.items():
        got = (c["seed"], c["iterations"], c["lr_g"], c["data"], c["crop_size"])
        assert got == (1, 7, 1e-4, "synthetic", 64)
        assert c["model"] == ROWS[r].model
        assert c["keep_weight"] == 0.0  # the paper's losses in every row, whatever the preset adds
    assert {cfgs[r]["variant"] for r in ("A", "A+D", "A+AD", "AA+AD")} == {"A", "A+D", "A+AD", "AA+AD"}
    differing = {k for k in cfgs["A"] if len({json.dumps(c[k]) for c in cfgs.values()}) > 1}
    assert differing == {"model", "variant"}


def test_row_folders_are_named_once():
    """ablate writes each row/seed to row_dir; figures and notebook 06 find the generators with
    row_generator."""
    assert row_dir("ab", "A+AD", 2) == Path("ab") / "A_AD" / "s2"
    want = Path("ab") / "AA_AD" / "s0" / "train" / "checkpoints" / "generator.pt"
    assert row_generator("ab", "AA+AD") == want
    assert [r.variant for r in ROWS.values()] == [None, None, "A", "A+D", "A+AD", "AA+AD"]


def test_tiny_ablation_writes_the_table(tiny_ablation):
    out, table = tiny_ablation
    for row in ("Eigen13", "Pix2Pix", "A"):
        res = json.loads((out / row / "s0" / "results.json").read_text())
        assert res["steps"] == 2 and res["n_images"] == 2 and res["seed"] == 0
        assert math.isfinite(res["psnr"]) and 0 < res["ssim"] <= 1
        assert table.measured[row]["psnr"] == pytest.approx(res["psnr"])
        assert table.measured[row]["psnr_std"] is None  # one seed: no spread to report
        assert (out / row / "s0" / "train" / "checkpoints" / "generator.pt").is_file()
    # the identity row is the rainy input scored against the ground truth of the held-out split
    from agan.evaluation.protocol import score_pair
    from agan.images import read_image

    ident = [score_pair(read_image(out / "heldout" / "data" / f"{i}_rain.png"),
                        read_image(out / "heldout" / "gt" / f"{i}_clean.png")) for i in range(2)]
    assert table.measured["input"]["psnr"] == pytest.approx(sum(p for p, _ in ident) / 2)
    with open(table.csv_path) as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    assert list(rows)[:6] == list(ROWS) and "input" in rows
    assert float(rows["A"]["paper_psnr"]) == 29.25 and float(rows["Eigen13"]["paper_ssim"]) == 0.6726
    assert float(rows["Pix2Pix"]["kit_psnr"]) == pytest.approx(table.measured["Pix2Pix"]["psnr"])
    assert rows["AA+AD"]["kit_psnr"] == ""  # not run in this call
    md = table.md_path.read_text()
    assert "| Eigen13 |" in md and "28.59" in md and "input" in md and "2 iterations" in md


def test_finished_rows_are_not_retrained(tiny_ablation, monkeypatch):
    out, table = tiny_ablation
    import agan.train.loop

    def no_training(*a, **k):
        raise AssertionError("a finished row was retrained")

    monkeypatch.setattr(agan.train.loop, "train", no_training)
    again = run_ablation("cpu", 1, out, rows=["Eigen13", "Pix2Pix", "A"], **KW)
    assert again.measured["A"] == table.measured["A"]
    # a config change that cannot continue a run is refused, not silently retrained
    with pytest.raises(FileExistsError, match="differs in lr_g"):
        run_ablation("cpu", 1, out, rows=["Eigen13"], **{**KW, "overrides": TINY + ["lr_g=1e-4"]})
    # ... but settings a row does not use do not count: Eigen13 and A have no discriminator
    other_d = {**KW, "overrides": TINY + ["disc_width=0.125"]}
    assert run_ablation("cpu", 1, out, rows=["Eigen13", "A"], **other_d).measured["A"] == table.measured["A"]
    with pytest.raises(FileExistsError, match="differs in disc_width"):
        run_ablation("cpu", 1, out, rows=["Pix2Pix"], **other_d)


def test_only_the_missing_row_seed_is_trained(tiny_ablation, monkeypatch):
    out, _ = tiny_ablation
    import agan.train.loop

    calls, real = [], agan.train.loop.train
    monkeypatch.setattr(agan.train.loop, "train",
                        lambda cfg, *a, **k: calls.append((cfg.model, cfg.seed)) or real(cfg, *a, **k))
    (out / "Eigen13" / "s0" / "results.json").unlink()  # as if interrupted after training, before scoring
    table = run_ablation("cpu", 1, out, rows=["Eigen13", "Pix2Pix", "A"], **KW)
    assert calls == [("eigen13", 0)]
    assert (out / "Eigen13" / "s0" / "results.json").is_file() and table.measured["Eigen13"]["n_seeds"] == 1


def test_summarise_mean_and_sample_std():
    runs = {"A": [{"seed": s, "psnr": p, "ssim": q, "input_psnr": 20.0, "input_ssim": 0.5}
                  for s, p, q in [(0, 20.0, 0.5), (1, 22.0, 0.7), (2, 24.0, 0.9)]]}
    m = summarise(runs)
    assert m["A"]["psnr"] == pytest.approx(22.0) and m["A"]["psnr_std"] == pytest.approx(2.0)
    assert m["A"]["ssim_std"] == pytest.approx(0.2) and m["A"]["n_seeds"] == 3
    assert m["input"]["psnr"] == 20.0


def test_order_agreement_with_the_paper():
    same = {r: {"psnr": row.paper_psnr, "ssim": row.paper_ssim} for r, row in ROWS.items()}
    assert order_agreement(same, "psnr") == (15, 15) and order_agreement(same, "ssim") == (15, 15)
    reverse = {r: {"psnr": -row.paper_psnr, "ssim": -row.paper_ssim} for r, row in ROWS.items()}
    assert order_agreement(reverse, "psnr") == (0, 15)
    assert order_agreement({"A": {"psnr": 1.0}, "AA+AD": {"psnr": 2.0}}) == (1, 1)


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown Table 1 row"):
        run_ablation("cpu", 1, tmp_path, rows=["B"])
    with pytest.raises(ValueError, match="seeds"):
        run_ablation("cpu", 0, tmp_path)
    with pytest.raises(FileNotFoundError, match="test folder not found"):
        run_ablation("cpu", 1, tmp_path, test=str(tmp_path / "nope"))


def test_heldout_split_is_rendered_once_and_checked(tmp_path):
    from agan.experiments.heldout import HELDOUT_SEED, make_heldout

    folder = make_heldout(tmp_path / "h", 1, (24, 32), progress=False)
    stamp = (folder / "data" / "0_rain.png").stat().st_mtime_ns
    assert make_heldout(tmp_path / "h", 1, (24, 32), progress=False) == folder  # reused, not re-rendered
    assert (folder / "data" / "0_rain.png").stat().st_mtime_ns == stamp
    assert json.loads((folder / "heldout.json").read_text())["seed"] == HELDOUT_SEED
    with pytest.raises(FileExistsError, match="another held-out split"):
        make_heldout(tmp_path / "h", 2, (24, 32), progress=False)
