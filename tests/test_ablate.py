"""The Table 1 driver (agan.experiments.ablate) on a tiny budget: rows train, score, tabulate, and resume;
and the decisive experiment of notebook 06 (agan.experiments.decide), which trains its rows the same way."""

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


# ------------------------------------------------------------------------------------------ scored on raw O
def _scores(out, settings=None):
    """Mean PSNR of row A's generator on the tiny held-out split, run with ``settings`` (None: the ones saved
    with it) -- computed here through derain + score_pair, not through the ablation's evaluate_model."""
    import numpy as np

    from agan.evaluation.protocol import score_pair
    from agan.images import list_images, read_image
    from agan.infer.load import load_generator
    from agan.infer.pipeline import derain

    G, saved = load_generator(row_generator(out, "A"), device="cpu")
    rains, gts = list_images(out / "heldout" / "data"), list_images(out / "heldout" / "gt")
    psnrs = []
    for rf, gf in zip(rains, gts):
        O, _ = derain(read_image(rf).astype(np.float32) / 255, model=G, device="cpu", clip=False,
                      settings=settings or saved)
        psnrs.append(score_pair(O, read_image(gf))[0])
    return sum(psnrs) / len(psnrs), saved


def test_rows_are_scored_on_raw_O(tiny_ablation):
    """Table 1 scores G's raw output O (the paper's protocol), not the kit's inference settings saved with
    the row's weights: the cpu preset saves derain_smooth 2, which would smooth A's change."""
    from agan.infer.settings import PAPER

    out, table = tiny_ablation
    raw, saved = _scores(out, PAPER)
    kit, _ = _scores(out)
    assert saved.smooth == 2.0 and saved.blend == "attention"  # what the row's weights carry
    res = json.loads((out / "A" / "s0" / "results.json").read_text())
    assert res["scored_on"] == "raw O" and res["protocol"]["settings"]["blend"] == "none"
    assert table.measured["A"]["psnr"] == pytest.approx(raw, abs=1e-9)
    assert abs(kit - raw) > 1e-3  # the saved settings give another number, which the table does not use


def test_a_run_scored_the_old_way_is_rescored_not_retrained(tiny_ablation):
    out, table = tiny_ablation
    res_path = out / "A" / "s0" / "results.json"
    ckpt = out / "A" / "s0" / "train" / "checkpoints" / "last.pt"
    old = json.loads(res_path.read_text())
    stamp = ckpt.stat().st_mtime_ns
    stale = {**old, "psnr": 0.0, "train_time_s": 12.5}
    del stale["scored_on"]  # as written before rows were scored on raw O
    res_path.write_text(json.dumps(stale))
    again = run_ablation("cpu", 1, out, rows=["Eigen13", "Pix2Pix", "A"], **KW)
    assert again.measured["A"]["psnr"] == pytest.approx(table.measured["A"]["psnr"])
    new = json.loads(res_path.read_text())
    assert new["scored_on"] == "raw O" and new["train_time_s"] >= 12.5  # training time carried over
    assert ckpt.stat().st_mtime_ns == stamp  # no step trained, no checkpoint written


# ------------------------------------------------------------------------------- the decisive experiment
MASK_KW = {"iterations": 2, "heldout_count": 3, "heldout_size": (32, 32), "progress": False, "device": "cpu",
           "log": lambda *a: None,
           "overrides": ["width=0.0625", "arn_width=0.125", "disc_width=0.0625", "crop_size=32",
                         "batch_size=2", "log_every=1", "ckpt_every=2"]}


def test_mask_rows_differ_only_in_what_they_ablate():
    from agan.experiments.decide import MASK_ROWS, mask_row_config

    cfgs = {r: mask_row_config("cpu", r, 1, iterations=9).to_dict() for r in MASK_ROWS}
    assert list(cfgs) == ["A", "AA", "AA+AD"]
    assert [cfgs[r]["variant"] for r in cfgs] == ["A", "AA+AD", "AA+AD"]
    diff = {k for k in cfgs["AA"] if cfgs["AA"][k] != cfgs["AA+AD"][k]}
    assert diff == {"pretrain_steps"} and cfgs["AA"]["pretrain_steps"] > 10 ** 9  # D never starts
    assert {k for k in cfgs["A"] if cfgs["A"][k] != cfgs["AA+AD"][k]} == {"variant"}
    for c in cfgs.values():  # the cheap config of the cpu preset, the paper's losses (no L_keep)
        got = (c["width"], c["crop_size"], c["iterations"], c["seed"], c["keep_weight"])
        assert got == (0.25, 32, 9, 1, 0.0)


def test_masked_scores_pool_the_pixels_of_M():
    """psnr_in / psnr_out are one PSNR over all pixels inside / outside M (protocol Y, clip-and-round),
    checked against agan.evaluation.protocol.psnr on the pooled pixels; an identity model gains 0."""
    import numpy as np
    import torch

    from agan.config import Config
    from agan.evaluation.protocol import psnr, rgb_to_y
    from agan.experiments.decide import masked_scores
    from agan.experiments.heldout import heldout_pairs

    class Brighter(torch.nn.Module):  # O = I + shift: a known raw output
        def __init__(self, shift):
            super().__init__()
            self.shift = torch.nn.Parameter(torch.tensor(shift))

        def forward(self, x):
            return x + self.shift

    cfg = Config.preset("cpu")
    pairs = heldout_pairs(cfg, 4, (24, 32))
    assert pairs["rain"].shape == (4, 3, 24, 32) and pairs["mask"].shape == (4, 1, 24, 32)
    same = masked_scores(Brighter(0.0), pairs)
    for k in ("psnr_in", "psnr_out", "psnr", "ssim"):
        assert same[k] == pytest.approx(same[f"input_{k}"])
    s = masked_scores(Brighter(0.05), pairs)

    def y(t):
        u8 = np.rint(np.clip(t.permute(0, 2, 3, 1).numpy(), 0, 1) * 255).astype(np.uint8)
        return np.stack([rgb_to_y(u, quantize=True) for u in u8])

    m = pairs["mask"][:, 0].numpy() > 0.5
    assert 0 < m.mean() < 1 and s["mask_fraction"] == pytest.approx(m.mean())
    O, T = y(pairs["rain"] + 0.05), y(pairs["clean"])
    assert s["psnr_in"] == pytest.approx(psnr(O[m], T[m]))
    assert s["psnr_out"] == pytest.approx(psnr(O[~m], T[~m]))
    assert s["input_psnr_in"] == pytest.approx(psnr(y(pairs["rain"])[m], T[m]))


def test_compare_seeds_known_answers():
    from agan.experiments.decide import compare_seeds

    c = compare_seeds([1.0, 1.2, 1.1], [1.5, 1.7, 1.6])
    assert c["diff"] == pytest.approx(0.5) and c["separated"] and c["spread"] == pytest.approx(0.2)
    c = compare_seeds([1.0, 1.6], [1.5, 1.7])  # overlapping ranges: the gap is within the spread
    assert not c["separated"] and c["diff"] == pytest.approx(0.3) and c["range_a"] == (1.0, 1.6)
    assert compare_seeds([2.0, 3.0], [0.0, 1.0])["separated"]


def test_tiny_mask_ablation(tmp_path, monkeypatch):
    from agan.experiments.decide import run_mask_ablation

    res = run_mask_ablation("cpu", 2, tmp_path, rows=["AA", "AA+AD"], **MASK_KW)
    for row in ("AA", "AA+AD"):
        runs = res.runs[row]
        assert [r["seed"] for r in runs] == [0, 1] and all(r["steps"] == 2 for r in runs)
        for r in runs:
            assert r["gain_in"] == pytest.approx(r["psnr_in"] - r["input_psnr_in"])
            assert r["gain_out"] == pytest.approx(r["psnr_out"] - r["input_psnr_out"])
        m = res.measured[row]["gain_in"]
        assert m["values"] == [r["gain_in"] for r in runs] and m["min"] <= m["mean"] <= m["max"]
    # AA trains G alone: no GAN term, no discriminator update in any logged step
    for row, has_gan in (("AA", False), ("AA+AD", True)):
        logged = [json.loads(line) for line in (row_dir(tmp_path, row, 0) / "train" / "metrics.jsonl").open()]
        train = [r for r in logged if r.get("split") == "train"]
        assert train and all(("L_GAN" in r) == has_gan and ("L_D" in r) == has_gan for r in train)
        assert all("L_ATT" in r for r in train)
    assert res.measured["AA"]["d_idle"] == [None, None]  # no discriminator step: nothing to be idle
    assert all(0.0 <= v <= 1.0 for v in res.measured["AA+AD"]["d_idle"])
    c = res.compare("AA", "AA+AD")
    assert c["diff"] == pytest.approx(res.measured["AA+AD"]["gain_in"]["mean"]
                                      - res.measured["AA"]["gain_in"]["mean"])
    md = (tmp_path / "mask_ablation.md").read_text()
    assert "| AA |" in md and "| input |" in md and "2 iterations" in md and "raw output O" in md
    assert json.loads(res.json_path.read_text())["info"]["seeds"] == [0, 1]
    # done runs are reused; a run scored on another held-out split is re-scored, not retrained
    import agan.train.loop

    calls, real = [], agan.train.loop.train
    monkeypatch.setattr(agan.train.loop, "train",
                        lambda cfg, *a, **k: calls.append(cfg.seed) or real(cfg, *a, **k))
    assert run_mask_ablation("cpu", 2, tmp_path, rows=["AA", "AA+AD"], **MASK_KW).measured == res.measured
    assert calls == []
    more = run_mask_ablation("cpu", [0], tmp_path, rows=["AA"], **{**MASK_KW, "heldout_count": 4})
    assert calls == [] and more.runs["AA"][0]["heldout"]["count"] == 4


def test_figures_score_the_rows_on_raw_O(tiny_ablation, tmp_path):
    """agan.experiments.results (Fig. 6, 7 and their scores) runs each row's G with the paper's O too."""
    import numpy as np

    from agan.evaluation.protocol import score_pair
    from agan.experiments import results as R
    from agan.infer.load import load_generator
    from agan.infer.pipeline import derain
    from agan.infer.settings import PAPER
    from agan.synth import SynthParams, make_pair
    from agan.synth.params import replace

    out, _ = tiny_ablation
    R.compute_results(tmp_path, None, out, n_images=1, size=(32, 48), n_score=2, device="cpu", progress=False)
    meta = R.load_results(tmp_path)["meta"]
    rec = meta["row_weights"]["A"]
    assert rec["scored_on"] == "raw O"
    G, saved = load_generator(row_generator(out, "A"), device="cpu")
    pairs = [make_pair(meta["seed"], i, (32, 48), replace(SynthParams(), frame_px=48)) for i in range(2)]
    for settings, same in ((PAPER, True), (saved, False)):
        want = [list(score_pair(derain(p.rain.astype(np.float32) / 255, model=G, device="cpu", clip=False,
                                       settings=settings, size=rec["run_size"])[0], p.clean)) for p in pairs]
        got = [list(s) for s in meta["scores"]["A"]]
        assert (np.allclose(got, want, rtol=0, atol=1e-9)) == same
