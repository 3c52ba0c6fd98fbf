"""Training loop: run files per variant, losses, D/G update separation, bit-exact resume, NaN stop,
signals, run-directory safety, CLI. Tiny networks on a tiny in-memory dataset (no agan.data.datasets
needed)."""

import argparse
import json
import math
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from agan.checkpoint import safe_load
from agan.config import Config
from agan.images import difference_mask
from agan.losses import LOSS_NAMES
from agan.train.loop import Trainer, train
from agan.train.monitor import NonFiniteLossError
from agan.train.recipes import AganRecipe
from agan.train.registry import RECIPES
from tests.conftest import assert_same_training_state

VARIANT_TERMS = {
    "A": {"L_M", "L_P", "L_G"},
    "A+D": {"L_GAN", "L_M", "L_P", "L_G", "L_D"},
    "A+AD": {"L_GAN", "L_M", "L_P", "L_G", "L_D", "L_map"},
    "AA+AD": set(LOSS_NAMES),
}


class Pairs(Dataset):
    """Deterministic pairs (item i = f(seed, i)) with a random horizontal flip drawn from the *global*
    torch RNG, like an augmenting dataset, so that resume must restore RNG states to be exact."""

    def __init__(self, n=6, size=32, seed=0, flip=True):
        self.n, self.size, self.seed, self.flip = n, size, seed, flip

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 1000 + i)
        s = self.size
        clean = torch.nn.functional.interpolate(torch.rand(1, 3, s // 8, s // 8, generator=g), size=(s, s),
                                                mode="bilinear", align_corners=False)[0]
        drops = (torch.rand(1, s, s, generator=g) > 0.85).float()
        rain = (clean * (1 - 0.5 * drops) + 0.45 * drops).clamp(0, 1)
        rain, clean = (rain * 255).round() / 255, (clean * 255).round() / 255
        if self.flip and torch.rand(()) < 0.5:
            rain, clean = rain.flip(-1), clean.flip(-1)
        return {"rain": rain, "clean": clean, "mask": difference_mask(rain, clean), "id": f"{self.seed}_{i}"}


def tiny(**kw) -> Config:
    base = {"width": 0.125, "steps": 2, "crop_size": 32, "batch_size": 2, "disc_width": 0.25, "disc_pool": 2,
            "iterations": 2, "log_every": 1, "val_every": 2, "ckpt_every": 2, "sample_every": 2,
            # L_P on (the cpu preset has it off)
            "vgg_layers": ("relu1_1", "relu1_2"), "perceptual_weight": 1.0}
    return Config.preset("cpu", **{**base, **kw})


def run(cfg, out, **kw):
    kw.setdefault("train_set", Pairs())
    kw.setdefault("val_set", Pairs(2, seed=9, flip=False))
    return train(cfg, out, progress=False, **kw)


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("variant", ["A", "A+D", "A+AD", "AA+AD"])
def test_variant_writes_run_files(tmp_path, variant):
    cfg = tiny(variant=variant)
    res = run(cfg, tmp_path / "run")
    out = res.out_dir
    assert res.step == 2 and not res.interrupted
    assert Config.load(out / "config.json") == cfg
    train_rows = [r for r in rows(out / "metrics.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2]
    for r in train_rows:
        terms = set(r) & set(LOSS_NAMES)
        assert terms == VARIANT_TERMS[variant] | ({"L_keep"} if cfg.keep_weight else set())  # cpu: on
        assert all(math.isfinite(r[t]) for t in terms)
        parts = ("L_GAN", "L_ATT", "L_M", "L_keep", "L_P")
        assert r["L_G"] == pytest.approx(sum(r[t] for t in parts if t in r), rel=1e-5)
    val_rows = [r for r in rows(out / "metrics.jsonl") if r["split"] == "val"]
    assert [r["step"] for r in val_rows] == [0, 2]
    assert val_rows[-1]["psnr_input"] > 15 and 0 < val_rows[-1]["ssim_input"] <= 1
    assert res.val == {k: v for k, v in val_rows[-1].items() if k not in ("step", "split")}
    # checkpoints load with weights_only=True and hold what resume needs
    ck = safe_load(out / "checkpoints" / "last.pt")
    assert ck["format"] == "agan-checkpoint" and ck["version"] == 1 and ck["step"] == 2
    assert Config.from_dict(ck["config"]) == cfg
    assert (ck["D"] is None) == (variant == "A") and (ck["opt_D"] is None) == (variant == "A")
    assert set(ck["rng"]) >= {"torch", "numpy", "python"} and ck["metrics"]["val"]["psnr"] == res.val["psnr"]
    for k, v in res.G.state_dict().items():
        assert torch.equal(ck["G"][k], v)
    gen = safe_load(out / "checkpoints" / "generator.pt")
    assert gen["format"] == "agan-generator" and set(gen) >= {"config", "G"} and "opt_G" not in gen
    # sample grid: rows = 2 val images, columns = input, A_1..A_N, O, clean
    grid = Image.open(out / "samples" / "step_000002.png")
    n_cols = 2 + (cfg.steps if variant == "AA+AD" else 0) + 1
    assert grid.size == (n_cols * (32 + 2) + 2, 2 * (32 + 2) + 2)
    log = (out / "train.log").read_text()
    assert "RANDOM-INIT VGG16" in log and "val PSNR" in log


def test_d_update_leaves_g_alone_and_vice_versa(tmp_path):
    trainer = Trainer(tiny(), tmp_path / "run", False, False, False, *_single(), Pairs(), Pairs(2, seed=9))
    batch = {k: torch.stack([Pairs()[i][k] for i in range(2)]) for k in ("rain", "clean", "mask")}
    G0 = {k: v.clone() for k, v in trainer.gan.G_bare.state_dict().items()}
    D0 = {k: v.clone() for k, v in trainer.gan.D_bare.state_dict().items()}
    out = trainer.gan.recipe.generate(trainer.gan.G, batch)
    terms = trainer.gan.d_step(batch, out)
    assert set(terms) == {"L_D", "L_map", "D_range", "D_R", "D_O"}  # diagnostics: logit spread, D(R), D(O)
    assert all(torch.equal(v, G0[k]) for k, v in trainer.gan.G_bare.state_dict().items())
    assert any(not torch.equal(v, D0[k]) for k, v in trainer.gan.D_bare.state_dict().items())
    assert all(p.grad is None for p in trainer.gan.G_bare.parameters())  # L_D sees O.detach()
    D1 = {k: v.clone() for k, v in trainer.gan.D_bare.state_dict().items()}
    terms = trainer.gan.g_step(batch, out, adversarial=True)
    assert set(terms) == VARIANT_TERMS["AA+AD"] - {"L_D", "L_map"}
    assert all(torch.equal(v, D1[k]) for k, v in trainer.gan.D_bare.state_dict().items())
    assert any(not torch.equal(v, G0[k]) for k, v in trainer.gan.G_bare.state_dict().items())
    assert all(p.requires_grad for p in trainer.gan.D_bare.parameters())  # unfrozen again


def _single():
    from agan.train.distributed import DistInfo

    return DistInfo(), torch.device("cpu")


def test_resume_is_bit_exact(tmp_path):
    # 6 items, batch 2: 3 steps per epoch, so the resumed half starts mid-epoch and crosses an epoch
    # constant lr: the first half is a run of 2 iterations extended to 5, which stretches a cosine schedule
    # (an interrupted cosine run resumes exactly: test_cosine_lr_schedule_values_and_exact_resume)
    cfg = tiny(iterations=5, log_every=2, val_every=0, ckpt_every=100, sample_every=0, lr_schedule="constant")
    full = run(cfg, tmp_path / "full")
    half = run(cfg.replace(iterations=2), tmp_path / "half")
    assert half.step == 2
    resumed = run(cfg, tmp_path / "half", resume=True)
    assert resumed.step == 5
    assert_same_training_state(safe_load(full.checkpoint), safe_load(resumed.checkpoint))
    # the resumed log continues where the first part stopped
    steps = [r["step"] for r in rows(tmp_path / "half" / "metrics.jsonl") if r["split"] == "train"]
    assert steps == [2, 4, 5]


def test_resume_with_a_checkpoint_that_does_not_fit_is_one_clear_error(tmp_path):
    cfg = tiny(iterations=2, val_every=0, sample_every=0)
    res = run(cfg, tmp_path / "run")
    ckpt = safe_load(res.checkpoint)
    ckpt["D"]["features.0.weight"] = ckpt["D"]["features.0.weight"][:2]  # a D from before the 4-channel floor
    ckpt["D"]["features.0.bias"] = ckpt["D"]["features.0.bias"][:2]
    torch.save(ckpt, res.checkpoint)
    before = res.checkpoint.read_bytes()
    with pytest.raises(ValueError,
                       match=r"last\.pt: the saved discriminator does not fit .*features\.0\.weight"):
        run(cfg.replace(iterations=4), tmp_path / "run", resume=True)
    assert res.checkpoint.read_bytes() == before  # nothing overwritten


class _NaNRecipe(AganRecipe):
    """L_P becomes NaN from the 4th generator update on."""

    calls = 0

    def g_loss(self, D, batch, out, adversarial):
        L_G, terms = super().g_loss(D, batch, out, adversarial)
        type(self).calls += 1
        if type(self).calls >= 4:
            terms["L_P"] = terms["L_P"] * float("nan")
            L_G = L_G + terms["L_P"]
        return L_G, terms


class _SignalRecipe(AganRecipe):
    """Sends SIGTERM to its own process during the 3rd generator update."""

    calls = 0

    def g_loss(self, D, batch, out, adversarial):
        type(self).calls += 1
        if type(self).calls == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().g_loss(D, batch, out, adversarial)


def test_nan_stops_with_term_and_step_keeping_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setitem(RECIPES, "nan-test", _NaNRecipe)
    _NaNRecipe.calls = 0
    cfg = tiny(model="nan-test", iterations=8, log_every=3, ckpt_every=2, val_every=0, sample_every=0)
    with pytest.raises(NonFiniteLossError,
                       match=r"loss L_P became nan at step 4; .*last good checkpoint .*step 2"):
        run(cfg, tmp_path / "run")
    assert safe_load(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 2


def test_sigterm_saves_checkpoint_and_returns(tmp_path, monkeypatch):
    monkeypatch.setitem(RECIPES, "signal-test", _SignalRecipe)
    _SignalRecipe.calls = 0
    before = signal.getsignal(signal.SIGTERM)
    cfg = tiny(model="signal-test", iterations=50, log_every=10, ckpt_every=100, val_every=0, sample_every=0)
    res = run(cfg, tmp_path / "run")
    assert res.interrupted and res.step == 3
    ck = safe_load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ck["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_refuses_non_empty_or_different_run_dir(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty.*--resume.*--overwrite"):
        run(tiny(val_every=0, sample_every=0), out)
    res = run(tiny(val_every=0, sample_every=0), out, overwrite=True)
    assert res.step == 2 and (out / "notes.txt").read_text() == "mine"  # only run files are replaced
    with pytest.raises(FileExistsError, match="not empty"):
        run(tiny(val_every=0, sample_every=0), out)
    with pytest.raises(ValueError, match="different run.*variant"):
        run(tiny(val_every=0, sample_every=0, variant="A"), out, resume=True)


def test_cli_train_and_resume(tmp_path, monkeypatch, capsys):
    import agan.train.loop as T
    from agan.cli import main

    monkeypatch.setattr(T, "_dataset", lambda cfg, split: Pairs() if split == "train" else Pairs(2, seed=9))
    out = tmp_path / "cli"
    common = ["--set", "width=0.125", "--set", "steps=2", "--set", "crop_size=32", "--set", "batch_size=2",
              "--set", "disc_pool=2", "--set", "val_every=2",
              "--set", "vgg_layers=[\"relu1_1\", \"relu1_2\"]", "--set", "log_every=1", "--no-progress"]
    assert main(["train", "--preset", "cpu", "--variant", "A+D", "--iterations", "2", "--out", str(out),
                 *common]) == 0
    assert main(["train", "--variant", "A+D", "--iterations", "2", "--out", str(out), *common]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--iterations", "3", "--no-progress"]) == 0
    cfg = Config.load(out / "config.json")
    assert (cfg.variant, cfg.iterations, cfg.width) == ("A+D", 3, 0.125)
    assert safe_load(out / "checkpoints" / "last.pt")["step"] == 3


def test_cli_optimizer_recipe_and_help():
    import argparse

    from agan.cli.train import add_arguments, build_config

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg, out = build_config(p.parse_args(["--preset", "paper", "--optimizer", "rmsprop",
                                          "--iterations", "1000"]))
    assert (cfg.optimizer, cfg.lr_g, cfg.lr_d, cfg.pretrain_steps) == ("rmsprop", 2e-5, 1e-5, 100)
    assert out.name == "paper-AA+AD-s0" and cfg.crop_size == 224
    cfg, _ = build_config(p.parse_args(["--optimizer", "rmsprop", "--set", "lr_g=1e-4",
                                        "--set", "pretrain_steps=0"]))
    assert (cfg.name, cfg.lr_g, cfg.lr_d, cfg.pretrain_steps) == ("cpu", 1e-4, 1e-5, 0)


def test_module_entry_point_for_torchrun():
    import subprocess
    import sys

    # torchrun --nproc_per_node=K -m agan.train ... runs this entry point with the agan train options
    p = subprocess.run([sys.executable, "-m", "agan.train", "--help"], capture_output=True, text=True,
                       timeout=120, check=False)
    assert p.returncode == 0 and "--resume" in p.stdout and "torchrun" in p.stdout


def test_failed_start_writes_nothing(tmp_path):
    from agan.losses import VGGWeightsUnavailable

    out = tmp_path / "run"
    with pytest.raises(VGGWeightsUnavailable, match="not found"):
        run(tiny(vgg_weights=str(tmp_path / "missing_vgg16.pth")), out)
    assert not out.exists()  # so the corrected command can start in the same directory


def test_precision_on_cpu(tmp_path):
    from agan.precision import cpu_has_fast_bf16
    from agan.train.step import amp_dtype

    cpu = torch.device("cpu")
    # auto: bf16 on CPUs with native bf16 dot products, fp32 elsewhere
    assert amp_dtype(tiny(), cpu) == (torch.bfloat16 if cpu_has_fast_bf16() else None)
    assert amp_dtype(tiny(precision="fp32"), cpu) is None
    with pytest.raises(ValueError, match="fp16 is for CUDA"):
        amp_dtype(tiny(precision="fp16"), cpu)
    from agan.cpu import cpu_caps

    if not cpu_caps().bf16_ok:  # no bf16 convs in oneDNN here: refused in one line before training starts
        with pytest.raises(ValueError, match="precision bf16 needs a CPU"):
            amp_dtype(tiny(precision="bf16"), cpu)
        return
    assert amp_dtype(tiny(precision="bf16"), cpu) == torch.bfloat16
    res = run(tiny(precision="bf16", iterations=1, val_every=0, sample_every=0), tmp_path / "bf16")
    assert "precision bf16" in (tmp_path / "bf16" / "train.log").read_text()
    assert res.losses and all(math.isfinite(v) for v in res.losses.values())
    assert all(p.dtype == torch.float32 for p in res.G.parameters())  # fp32 master weights under autocast


def test_cosine_lr_schedule_values_and_exact_resume(tmp_path, monkeypatch):
    from agan.train.step import lr_factor

    cfg = tiny(lr_schedule="cosine", lr_final=0.1, iterations=5, log_every=5, val_every=0, ckpt_every=100,
               sample_every=0)
    f = [lr_factor(cfg, s) for s in range(6)]
    # half way: the mean
    assert f[0] == 1.0 and math.isclose(f[5], 0.1) and math.isclose(lr_factor(cfg, 2.5), 0.55)
    assert all(a > b for a, b in zip(f, f[1:]))  # decreasing
    assert lr_factor(cfg.replace(lr_schedule="constant"), 3) == 1.0
    with pytest.raises(ValueError, match="lr_schedule"):
        tiny(lr_schedule="step")
    # the last update (after 4 completed steps) used lr_g * f(4); an interrupted run resumes on the same
    # schedule
    full = run(cfg, tmp_path / "full")
    ck = safe_load(full.checkpoint)
    assert math.isclose(ck["opt_G"]["param_groups"][0]["lr"], cfg.lr_g * f[4])
    monkeypatch.setitem(RECIPES, "signal-test", _SignalRecipe)
    _SignalRecipe.calls = 0
    cut = run(cfg.replace(model="signal-test"), tmp_path / "cut")
    assert cut.interrupted and cut.step == 3
    _SignalRecipe.calls = 100  # no more signals
    resumed = run(cfg.replace(model="signal-test"), tmp_path / "cut", resume=True)
    assert resumed.step == 5
    assert_same_training_state(ck, safe_load(resumed.checkpoint))  # weights, Adam moments, lr, RNG


def test_ema_of_generator_weights_is_validated_saved_and_resumed(tmp_path, monkeypatch):
    from agan.train.step import ema_decay

    cfg = tiny(ema=0.9, iterations=5, log_every=5, val_every=5, ckpt_every=100, sample_every=0)
    # warm-up, then cfg.ema
    assert [round(ema_decay(cfg, s), 4) for s in (0, 1, 8, 100)] == [0.1, 0.1818, 0.5, 0.9]
    assert ema_decay(cfg.replace(ema=0.5), 100) == 0.5
    with pytest.raises(ValueError, match="ema"):
        tiny(ema=1.0)
    # the average, recomputed from the raw G after every step, is what validation, generator.pt and res.G hold
    seen = []
    from agan.train.step import GanStep

    real_update = GanStep.update_ema

    def spy(self, step):
        before = {k: v.clone() for k, v in self.G_ema.state_dict().items()}
        real_update(self, step)
        d = ema_decay(self.cfg, step)
        for k, v in self.G_ema.state_dict().items():
            expect = d * before[k] + (1 - d) * self.G_bare.state_dict()[k]
            torch.testing.assert_close(v, expect, rtol=1e-6, atol=1e-7)
        seen.append(step)

    monkeypatch.setattr(GanStep, "update_ema", spy)
    res = run(cfg, tmp_path / "ema")
    assert seen == [0, 1, 2, 3, 4]
    ck = safe_load(res.checkpoint)
    gen = safe_load(res.generator)
    assert ck["G_ema"].keys() == ck["G"].keys()
    assert all(torch.equal(gen["G"][k], v) for k, v in ck["G_ema"].items())
    assert any(not torch.equal(ck["G"][k], v) for k, v in ck["G_ema"].items())  # the average is not the raw G
    assert all(torch.equal(res.G.state_dict()[k], v) for k, v in ck["G_ema"].items())
    monkeypatch.setattr(GanStep, "update_ema", real_update)
    # validation scores the average: rescoring it by hand gives the logged numbers
    trainer = Trainer(cfg, tmp_path / "check", False, False, False, *_single(), Pairs(),
                      Pairs(2, seed=9, flip=False))
    trainer.gan.G_ema.load_state_dict(ck["G_ema"])
    assert trainer.validation.score()["psnr"] == pytest.approx(res.val["psnr"], abs=1e-9)
    trainer.gan.G_bare.load_state_dict(ck["G"])  # and the raw G is scored beside it
    assert (trainer.validation.score(trainer.gan.G_bare)["psnr"]
            == pytest.approx(res.val["psnr_raw"], abs=1e-9))
    assert res.val["psnr_raw"] != res.val["psnr"]
    # resume: the average continues bit-exactly
    half = run(cfg.replace(iterations=2, lr_schedule="constant"), tmp_path / "half")
    assert half.step == 2
    resumed = run(cfg.replace(lr_schedule="constant"), tmp_path / "half", resume=True)
    full = run(cfg.replace(lr_schedule="constant"), tmp_path / "full")
    assert_same_training_state(safe_load(full.checkpoint), safe_load(resumed.checkpoint))


def test_perceptual_loss_off_builds_no_vgg_and_logs_no_L_P(tmp_path, monkeypatch):
    import agan.train.recipes as recipes
    from agan.cli.train import add_arguments, build_config

    assert Config.preset("cpu").perceptual_weight == 0  # the cpu preset: no ImageNet VGG offline, so no L_P
    monkeypatch.setattr(recipes, "make_perceptual_loss",
                        lambda *a, **k: pytest.fail("VGG built with L_P off"))
    res = run(tiny(perceptual_weight=0.0, iterations=2), tmp_path / "off")
    rows_ = [r for r in rows(tmp_path / "off" / "metrics.jsonl") if r["split"] == "train"]
    assert rows_ and all("L_P" not in r for r in rows_)
    assert all(r["L_G"] == pytest.approx(r["L_GAN"] + r["L_ATT"] + r["L_M"] + r["L_keep"], rel=1e-5)
               for r in rows_)
    assert "L_P: off" in (tmp_path / "off" / "train.log").read_text() and res.step == 2
    # --vgg-weights asks for L_P: it turns the term on in a preset that has it off
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    on, _ = build_config(p.parse_args(["--preset", "cpu", "--vgg-weights", "random",
                                       "--out", str(tmp_path / "x")]))
    assert on.perceptual_weight == 1.0 and on.vgg_weights == "random"
    off, _ = build_config(p.parse_args(["--preset", "cpu", "--out", str(tmp_path / "y")]))
    assert off.perceptual_weight == 0.0
    kept, _ = build_config(p.parse_args(["--preset", "cpu", "--vgg-weights", "random",
                                         "--set", "perceptual_weight=0.5", "--out", str(tmp_path / "z")]))
    assert kept.perceptual_weight == 0.5


def test_num_workers_auto_resolves_per_device(monkeypatch):
    from agan.train.distributed import resolve_workers

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_workers(-1, cpu) == 0  # the CPU's cores train
    assert resolve_workers(3, cpu) == 3 and resolve_workers(0, cuda) == 0  # an explicit count is kept
    for cpus, workers in ((16, 4), (2, 1), (1, 0)):  # min(4, CPUs - 1) beside a GPU
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        assert resolve_workers(-1, cuda) == workers
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun, 8 GPU processes on 16 CPUs: 2 CPUs each
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert resolve_workers(-1, cuda) == 1
    assert Config().num_workers == -1 and Config.preset("cpu").num_workers == -1


def test_deterministic_run_is_logged_and_switches_torch_to_deterministic_kernels(tmp_path):
    cfg = tiny(iterations=1, val_every=0, sample_every=0, deterministic=True)
    try:
        res = run(cfg, tmp_path / "run")
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    assert res.step == 1
    assert ", deterministic," in (tmp_path / "run" / "train.log").read_text()
    assert Config.load(tmp_path / "run" / "config.json").deterministic is True


class _DeadDRecipe(AganRecipe):
    """D's second stride-4 conv can never fire (zero weights, negative bias): after its ReLU D's output is
    one constant whatever the image, and no gradient reaches the layers before it, as in seed 2 of the cpu
    preset."""

    def build(self):
        G, D = super().build()
        with torch.no_grad():
            D.down2.weight.zero_()
            D.down2.bias.fill_(-1.0)
        return G, D


def test_a_dead_discriminator_is_logged(tmp_path, monkeypatch):
    monkeypatch.setitem(RECIPES, "dead-d-test", _DeadDRecipe)
    cfg = tiny(model="dead-d-test", iterations=4, log_every=2, val_every=0, sample_every=0)
    run(cfg, tmp_path / "dead")
    log = (tmp_path / "dead" / "train.log").read_text()
    assert "step 2: D idle: the same output for every real and fake image" in log
    assert "D was idle in 2 of the 2 logged windows of this run, to the end" in log
    assert [r["D_range"] for r in rows(tmp_path / "dead" / "metrics.jsonl")
            if r["split"] == "train"] == [0.0, 0.0]

    alive = run(tiny(iterations=4, log_every=2, val_every=0, sample_every=0), tmp_path / "alive")
    assert all(r["D_range"] > 0 for r in rows(alive.out_dir / "metrics.jsonl") if r["split"] == "train")
    assert "idle" not in (alive.out_dir / "train.log").read_text()


def test_real_val_is_scored_like_agan_derain_beside_the_synthetic_split(tmp_path):
    """--real-val: real pairs (rain/ + clean/, any size) scored whole at every validation point, through
    agan.infer.pipeline.derain_tensor with the config's derain settings, beside the synthetic split and the
    input's own score."""
    from agan.evaluation.protocol import score_pair
    from agan.images import write_image
    from agan.infer.pipeline import derain_tensor
    from agan.infer.settings import DerainSettings

    real = tmp_path / "real"
    rng = np.random.default_rng(0)
    for i in range(2):
        clean = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)  # not a multiple of 4, not square
        rain = np.clip(clean.astype(int) + rng.integers(-40, 40, clean.shape), 0, 255).astype(np.uint8)
        write_image(real / "rain" / f"{i}_rain.png", rain)
        write_image(real / "clean" / f"{i}_clean.png", clean)
    cfg = tiny(real_val=str(real), derain_size=24)
    res = run(cfg, tmp_path / "run")
    real_rows = [r for r in rows(res.out_dir / "metrics.jsonl") if r["split"] == "real"]
    assert [r["step"] for r in real_rows] == [0, 2]
    pairs = [tuple(np.array(Image.open(real / k / f"{i}_{k}.png")) for k in ("rain", "clean"))
             for i in range(2)]
    ident = np.mean([score_pair(r, c) for r, c in pairs], 0)
    x = [torch.from_numpy(r).permute(2, 0, 1)[None].float() / 255 for r, _ in pairs]
    settings = DerainSettings.of(cfg)
    assert settings.size == 24
    outs = [derain_tensor(res.G.eval(), xi, precision="auto", settings=settings)[0] for xi in x]
    got = np.mean([score_pair(o[0].permute(1, 2, 0).numpy(), c) for o, (_, c) in zip(outs, pairs)], 0)
    last = real_rows[-1]
    assert last["psnr_input"] == pytest.approx(ident[0]) and last["ssim_input"] == pytest.approx(ident[1])
    assert last["psnr"] == pytest.approx(got[0], abs=1e-6) and last["ssim"] == pytest.approx(got[1], abs=1e-6)
    log = (res.out_dir / "train.log").read_text()
    assert "step 2: real PSNR" in log and "2 real pairs" in log and "; real PSNR" in log.splitlines()[-1]


def test_real_val_with_two_folders_scores_and_logs_each(tmp_path):
    """--real-val A B: each folder's pairs are scored on their own at every validation point (rows with
    "set"), each against its own input; the command line takes several folders."""
    from agan.cli import train as cli_train
    from agan.images import write_image

    rng = np.random.default_rng(1)
    for name, n, shift in (("train_pairs", 2, 40), ("val_pairs", 1, 10)):
        for i in range(n):
            clean = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
            rain = np.clip(clean.astype(int) + shift, 0, 255).astype(np.uint8)
            write_image(tmp_path / name / "rain" / f"{i}_rain.png", rain)
            write_image(tmp_path / name / "clean" / f"{i}_clean.png", clean)
    folders = (str(tmp_path / "train_pairs"), str(tmp_path / "val_pairs"))
    res = run(tiny(real_val=folders, derain_size=24), tmp_path / "run")
    real_rows = [r for r in rows(res.out_dir / "metrics.jsonl") if r["split"] == "real"]
    assert [(r["step"], r["set"]) for r in real_rows] == [(0, "train_pairs"), (0, "val_pairs"),
                                                         (2, "train_pairs"), (2, "val_pairs")]
    by_set = {r["set"]: r for r in real_rows}
    assert by_set["train_pairs"]["psnr_input"] != by_set["val_pairs"]["psnr_input"]  # each its own input
    log = (res.out_dir / "train.log").read_text()
    assert "2 real pairs, " + folders[0] in log and "1 real pairs, " + folders[1] in log
    parser = argparse.ArgumentParser()
    cli_train.add_arguments(parser)
    out = ["--out", str(tmp_path / "o")]
    cfg, _ = cli_train.build_config(parser.parse_args(["--real-val", *folders, *out]))
    assert cfg.real_val == folders and cfg.real_val_dirs == list(folders)
    cfg, _ = cli_train.build_config(parser.parse_args(["--real-val", folders[0], *out]))
    assert cfg.real_val == folders[0] and cfg.real_val_dirs == [folders[0]]  # one folder: as before
    with pytest.raises(ValueError, match="different names"):
        tiny(real_val=(folders[0], str(tmp_path / "x" / "train_pairs")))


def test_real_val_folder_without_pairs_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises((FileNotFoundError, ValueError), match="empty"):
        run(tiny(real_val=str(tmp_path / "empty")), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bench_times_the_trainers_own_step(tmp_path):
    """``agan bench``'s training step is the trainer's GanStep: for the same config, seed and batch it
    computes the same losses, bit for bit, as the Trainer's step (and its "plain" runner the same losses to
    rounding)."""
    from agan.experiments.bench_train import bench_batch, train_step_runners
    from agan.train.step import GanStep

    cfg = tiny(crop_size=32, batch_size=2)
    runners = train_step_runners(cfg, torch.device("cpu"))
    trainer = Trainer(cfg, tmp_path / "run", False, False, False, *_single(), Pairs(), Pairs(2, seed=9))
    assert type(runners["fast"]) is type(trainer.gan) is GanStep
    batch = bench_batch(cfg)
    for step in range(2):
        ours = runners["fast"](runners["fast"].to_device(batch), step)
        theirs = trainer.gan(trainer.gan.to_device(batch), step)
        assert ours.keys() == theirs.keys() >= {"L_D", "L_G", "L_ATT", "L_M", "L_GAN", "grad_norm_G"}
        for k in ours:
            assert torch.equal(ours[k], theirs[k]), k
    plain = runners["plain"](runners["plain"].to_device(batch), 0)
    fresh = train_step_runners(cfg.replace(precision="fp32"), torch.device("cpu"))["fast"]
    first = fresh(fresh.to_device(batch), 0)  # the same step, channels-last instead of NCHW
    for k in ("L_D", "L_G"):
        torch.testing.assert_close(plain[k], first[k], rtol=1e-4, atol=1e-6)


def test_d_means_are_ds_mean_outputs_on_real_and_fake():
    """D_R / D_O (metrics.jsonl) are D's mean probabilities on the clean and on the generated images."""
    from agan.train.recipes import d_means

    real, fake = torch.tensor([[2.0], [0.0]]), torch.tensor([[-2.0], [0.0]])
    m = d_means(real, fake)
    s = torch.sigmoid(torch.tensor(2.0)).item()
    assert m["D_R"].item() == pytest.approx((s + 0.5) / 2)
    assert m["D_O"].item() == pytest.approx((1 - s + 0.5) / 2)
