"""The CUDA paths: parity with the CPU, training under autocast (bf16 / fp16 with gradient scalers), resume,
inference with tiles, evaluation, torchrun. Skipped where no GPU is present (CI); run on a GPU machine with
``python -m pytest tests/test_cuda.py``. ``AGAN_TEST_DEVICE=cpu`` runs the same code on the CPU (to debug the
tests themselves; the fp16 tests then skip)."""

import contextlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from agan.checkpoint import safe_load
from agan.config import Config
from agan.models import Generator
from agan.models.authors import import_authors_state_dict
from tests.conftest import assert_same_training_state
from tests.test_train import run, tiny

DEV = os.environ.get("AGAN_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(DEV is None,
                                reason="no CUDA device (set AGAN_TEST_DEVICE=cpu to run on the CPU)")
ON_CUDA = DEV is not None and DEV.startswith("cuda")
needs_cuda = pytest.mark.skipif(not ON_CUDA, reason="fp16 autocast and the torchrun check need CUDA")
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def no_tf32():
    """Exact fp32 on Ampere and newer: training turns TF32 on for the process (10-bit mantissa convs)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_golden_import_on_device(authors_sd, reference_outputs):
    """The golden test's float64 reference outputs (docs/paper.md#golden-import-test), from the imported
    weights in float32 on the device."""
    G = Generator().to(DEV)
    G.load_state_dict(import_authors_state_dict({k: v.float() for k, v in authors_sd.items()}))
    x = torch.from_numpy(np.ascontiguousarray(reference_outputs["input"][:, ::-1])).float().to(DEV)
    with no_tf32(), torch.no_grad():
        out = G(x)
    for t, A_t in enumerate(out.attention):
        np.testing.assert_allclose(A_t.cpu().double().numpy(), reference_outputs["attention"][t],
                                   rtol=0, atol=1e-4)
    O = out.O.cpu().double().numpy()[:, ::-1]
    np.testing.assert_allclose(O, reference_outputs["output"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_fast_generator_on_device_matches_plain(precision):
    from agan.accel.fast import fast_forward
    from agan.precision import resolve_precision

    torch.manual_seed(0)
    G = Generator(width=0.5).to(DEV).eval()
    x = torch.rand(2, 3, 64, 92, device=DEV)
    with no_tf32(), torch.no_grad():
        ref = G(x).O
        out = fast_forward(G, x, precision=precision).O.float()
    assert out.device.type == torch.device(DEV).type
    if resolve_precision(precision, DEV) == "fp32":
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)
    else:  # fp16 on CUDA: the README's >= 40 dB of the plain output
        psnr = 10 * torch.log10(1.0 / (out - ref).pow(2).mean()).item()
        assert psnr >= 40, psnr


def _finite_train_rows(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert train_rows and all(np.isfinite(v) for r in train_rows for k, v in r.items() if k.startswith("L_"))
    return rows


@pytest.mark.parametrize("precision", ["auto", pytest.param("fp16", marks=needs_cuda), "fp32"])
def test_training_on_device(tmp_path, precision):
    cfg = tiny(device=DEV, precision=precision, iterations=3, val_every=3, ckpt_every=3, sample_every=3)
    res = run(cfg, tmp_path / "run")
    assert res.step == 3 and res.G is not None
    assert next(res.G.parameters()).device.type == torch.device(DEV).type
    rows = _finite_train_rows(res.out_dir)
    assert any(r["split"] == "val" and np.isfinite(r["psnr"]) for r in rows)
    ckpt = safe_load(res.checkpoint)  # loads on a machine without a GPU too (map_location cpu)
    assert all(t.device.type == "cpu" for t in ckpt["G"].values())
    if precision == "fp16":  # the gradient scalers ran and were saved for --resume
        assert ckpt["scaler_G"] and ckpt["scaler_G"]["scale"] > 0
    # the run's generator.pt loads for inference on the CPU
    from agan.infer import DerainSettings
    from agan.infer.load import load_generator

    g, settings = load_generator(res.generator, device="cpu")
    assert next(g.parameters()).device.type == "cpu" and settings == DerainSettings.of(cfg)


def test_resume_on_device_is_bit_exact_when_deterministic(tmp_path):
    """With ``deterministic=True`` a resumed run holds the same bits as an uninterrupted one, as on the
    CPU (test_train.test_resume_is_bit_exact). Without it cuDNN autotunes and some of its weight-gradient
    kernels reduce in a varying order: on an H100 two such runs differed by up to 2e-3 of a weight's scale
    after 5 steps (Adam turns rounding-size gradient differences into lr-size steps)."""
    cfg = tiny(device=DEV, precision="fp32", iterations=5, log_every=1, val_every=0, ckpt_every=100,
               sample_every=0, lr_schedule="constant", deterministic=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            full = run(cfg, tmp_path / "full")
            run(cfg.replace(iterations=2), tmp_path / "half")
            resumed = run(cfg, tmp_path / "half", resume=True)
    finally:  # the switches are process-wide: leave the other tests as they were
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    for w in {str(w.message).splitlines()[0] for w in caught if "deterministic" in str(w.message)}:
        print("warning:", w)
    assert resumed.step == 5
    assert_same_training_state(safe_load(full.checkpoint), safe_load(resumed.checkpoint))


@pytest.mark.parametrize("path", ["plain", "accel"])
def test_derain_on_device_matches_cpu(tmp_path, path):
    """derain() on the device equals the CPU, by G's own forward (the default) and by the forward
    ``agan derain --precision fp32`` runs (agan.accel)."""
    from agan.accel import pick_forward
    from agan.infer.pipeline import derain

    torch.manual_seed(1)
    G = Generator(width=0.25, steps=2).eval()
    img = (np.random.default_rng(0).random((90, 150, 3)) * 255).astype(np.uint8)

    def forward(device):
        return None if path == "plain" else pick_forward(G, "fp32", device)

    with no_tf32():
        cpu_out, cpu_maps = derain(img.astype(np.float32) / 255, model=G, device="cpu", tile=48, overlap=8,
                                   clip=False, forward=forward("cpu"))
        dev_out, dev_maps = derain(img.astype(np.float32) / 255, model=G, device=DEV, tile=48, overlap=8,
                                   clip=False, forward=forward(DEV))
        t = torch.from_numpy(img).permute(2, 0, 1).to(DEV)
        # a tensor stays on its device, uint8 stays uint8
        t_out, t_maps = derain(t, model=G, device=DEV, forward=forward(DEV))
    assert isinstance(dev_out, np.ndarray) and dev_out.shape == (90, 150, 3)
    np.testing.assert_allclose(dev_out, cpu_out, rtol=0, atol=1e-4)
    for a, b in zip(dev_maps, cpu_maps):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    assert t_out.dtype == torch.uint8 and t_out.shape == (3, 90, 150)
    assert t_out.device.type == torch.device(DEV).type
    assert len(t_maps) == 2


def test_eval_cli_on_device_matches_cpu(tmp_path, capsys):
    from agan.cli import main

    res = run(tiny(device=DEV, iterations=2, val_every=0, sample_every=0), tmp_path / "run")
    data = tmp_path / "pairs"
    assert main(["synth", "--out", str(data), "--n", "3", "--size", "64"]) == 0
    scores = {}
    for i, dev in enumerate(("cpu", DEV)):
        js = tmp_path / f"eval-{i}.json"
        with no_tf32():
            assert main(["eval", "--weights", str(res.generator), "--data", str(data), "--device", dev,
                         "--json", str(js)]) == 0
        scores[i] = json.loads(js.read_text())
    a, b = scores[0]["all"], scores[1]["all"]
    assert a["n"] == b["n"] == 3
    assert a["input_psnr"] == b["input_psnr"] and a["input_ssim"] == b["input_ssim"]
    # uint8 outputs: a pixel whose value sits at a rounding boundary may flip between the devices
    assert abs(a["psnr"] - b["psnr"]) <= 0.01 and abs(a["ssim"] - b["ssim"]) <= 1e-4, (a, b)


@needs_cuda
def test_torchrun_on_one_gpu(tmp_path):
    """`torchrun -m agan.train` on one GPU with the synthetic data: the entry point and the device pick.
    (With one process torchrun sets WORLD_SIZE=1 and no process group is made; nccl DDP needs two GPUs:
    nccl refuses two ranks on one device.)"""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
           "-m", "agan.train", "--preset", "cpu", "--iterations", "6", "--out", str(out),
           "--no-progress",
           "--set", "val_every=6", "--set", "ckpt_every=6", "--set", "sample_every=6", "--set", "val_size=4"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = safe_load(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 6
    assert "device cuda" in (out / "train.log").read_text()
    assert Config.load(out / "config.json").iterations == 6
