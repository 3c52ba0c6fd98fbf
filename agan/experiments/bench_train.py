"""The training side of ``agan bench``: the trainer's own step, timed, and the synthesiser's pairs/s.

``bench_train_step`` times :class:`agan.train.step.GanStep`, the step ``agan train`` runs (G forward, the D
update on L_D, the G update on L_G with D frozen; paper Sec. 4, Eqs. 7-9), built from the same config:
    plain   the reference: eager fp32, NCHW;
    fast    the trainer's own settings: precision "auto" (bf16 autocast on CPUs with native bf16 and on
            Ampere+ GPUs, ``agan.precision``) and channels-last models and batches.
Where the preset has L_P on, its VGG16 features are random-init (the same cost as ImageNet's, which cannot be
downloaded offline). The batch is seeded random images with a random mask.
"""

from __future__ import annotations

import statistics
import time

import torch

from agan.config import Config
from agan.experiments.rates import sync
from agan.train.step import GanStep

__all__ = ["bench_synth", "bench_train_step", "train_step_runners"]


def bench_config(preset: str = "paper", size: int = 224, batch: int = 2,
                 width: float | None = None) -> Config:
    """The preset at the bench's crop size and batch (and width); random-init VGG16 where L_P is on."""
    cfg = Config.preset(preset)
    changes = {"crop_size": size, "batch_size": batch, **({"width": width} if width else {})}
    if cfg.perceptual_weight and cfg.vgg_weights == "imagenet":
        changes["vgg_weights"] = "random"
    return cfg.replace(**changes)


def train_step_runners(cfg: Config, device: torch.device) -> dict[str, GanStep]:
    """The two GanSteps the bench times: "plain" (fp32, NCHW) and "fast" (cfg's precision, channels-last:
    exactly the trainer's ``Trainer.gan``)."""
    quiet = lambda msg: None  # noqa: E731 - the recipes' log lines (e.g. "L_P off") are the trainer's
    return {"plain": GanStep(cfg.replace(precision="fp32"), device, quiet, channels_last=False),
            "fast": GanStep(cfg, device, quiet, channels_last=True)}


def bench_batch(cfg: Config, seed: int = 0) -> dict:
    """A seeded batch of the config's crop size: rain and clean (B, 3, H, W) in [0, 1], mask (B, 1, H, W)."""
    g = torch.Generator().manual_seed(seed)
    b, s = cfg.batch_size, cfg.crop_size
    rain, clean = torch.rand(b, 3, s, s, generator=g), torch.rand(b, 3, s, s, generator=g)
    mask = (torch.rand(b, 1, s, s, generator=g) > 0.8).float()
    return {"rain": rain, "clean": clean, "mask": mask, "id": [str(i) for i in range(b)]}


def bench_train_step(preset: str = "paper", size: int = 224, batch: int = 2, steps: int = 2,
                     width: float | None = None, device: torch.device | str = "cpu", progress=None) -> dict:
    """Seconds per training step (median of ``steps`` after one warm-up step), plain vs fast, interleaved."""
    device = torch.device(device)
    cfg = bench_config(preset, size, batch, width)
    runners = train_step_runners(cfg, device)
    batches = {k: gan.to_device(bench_batch(cfg)) for k, gan in runners.items()}
    times: dict[str, list[float]] = {k: [] for k in runners}
    for r in range(steps + 1):  # round 0: warm-up
        for k, gan in runners.items():
            sync(device)
            t0 = time.perf_counter()
            terms = gan(batches[k], step=r)
            terms["L_G"].item()  # the step has run
            sync(device)
            if r:
                times[k].append(time.perf_counter() - t0)
                if progress:
                    progress(f"train step {r}/{steps} {k}: {times[k][-1]:.2f} s")
    res = {"preset": preset, "size": size, "batch": batch, "variant": cfg.variant,
           "perceptual": bool(cfg.perceptual_weight)}
    for k in runners:
        res[f"{k}_seconds"] = statistics.median(times[k])
        res[f"{k}_seconds_all"] = times[k]
    amp = runners["fast"].amp
    res["fast_precision"] = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp]
    res["speedup"] = res["plain_seconds"] / res["fast_seconds"]
    return res


def bench_synth(size: int = 224, n: int = 50, seed: int = 0) -> dict:
    """Pairs/s of ``agan.synth.make_pair`` on one core, after a warm-up that builds the procedural
    background bank and loads the photos (a one-off cost per process, cached); a note when absent."""
    try:
        from agan.synth import make_pair
        from agan.synth.backgrounds import N_PROCEDURAL, _default_source, _procedural_bank
    except ImportError as e:
        return {"pairs_per_s": None, "note": f"agan.synth unavailable ({e})"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for k in range(N_PROCEDURAL):  # warm-up: background bank, photos
            _procedural_bank(k)
        _default_source()
        make_pair(seed, 0, size)
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            make_pair(seed, i, size)
        wall = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return {"size": size, "pairs": n, "pairs_per_s": n / wall, "note": "one core (torch threads = 1)"}
