"""The training loop of Attentive GAN (paper Sec. 4) and its ablations, on one device or many.

Reference: R. Qian et al., "Attentive Generative Adversarial Network for Raindrop Removal from A
Single Image", CVPR 2018, Sec. 4 (losses: Eqs. 4-9, docs/paper.md#losses). The authors released no
training code; the optimiser is the kit's documented choice (Adam 5e-4, betas 0.5/0.99; or RMSprop
2e-5 G / 1e-5 D with generator pre-training).

    from agan import Config
    from agan.train import train
    result = train(Config.preset("cpu"), "runs/demo")       # -> TrainResult

Each step is ``agan.train.step.GanStep``: G forward, a D update on L_D (Eqs. 8, 9), a G update on L_G with D
frozen (Eq. 7). The loop around it, per step:
    1. the step's terms go into the loss window (``agan.train.monitor``: NaN/inf and idle-D watch);
    2. every ``log_every`` steps: one host sync, a metrics.jsonl row, the progress bar;
    3. every ``val_every``: validation (``agan.train.validation``: held-out split, real pairs) and samples;
    4. every ``ckpt_every``: checkpoints/last.pt and generator.pt (atomic writes).
With ``cfg.ema`` > 0 validation scores the moving average of G (and the raw G beside it: psnr_raw, ssim_raw),
which is what generator.pt holds; the raw G stays in last.pt for resuming.

A run directory holds config.json, metrics.jsonl (one JSON object per log/validation point, loss names from
``agan.losses.LOSS_NAMES``), train.log, samples/step_XXXXXX.png (input, A_1..A_N, O, clean) and
checkpoints/last.pt (+ generator.pt for inference). SIGINT/SIGTERM save a checkpoint and return
(``interrupted=True``); ``resume=True`` continues bit-exactly on CPU.
Multi-GPU: ``torchrun --nproc_per_node=K -m agan.train ...`` (see ``agan.train.distributed``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from agan import pick_device
from agan.checkpoint import CHECKPOINT_FORMAT, GENERATOR_FORMAT, atomic_save
from agan.config import Config
from agan.data.layout import read_pairs
from agan.train import distributed as dist_
from agan.train.monitor import IdleMonitor, LossWindow
from agan.train.records import done_row, run_row
from agan.train.runstate import (
    VERSION,
    StopFlag,
    prepare_run_dir,
    restore_rng,
    rng_state,
    seed_all,
)
from agan.train.step import GanStep, set_backends
from agan.train.validation import Validation

__all__ = ["TrainResult", "Trainer", "run_name", "train"]


def _json_row(line: str) -> dict | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


@dataclass
class TrainResult:
    out_dir: Path
    config: Config
    step: int
    losses: dict[str, float] = field(default_factory=dict)  # last logged window means
    val: dict[str, float] = field(default_factory=dict)  # psnr, ssim, psnr_input, ssim_input at the end
    checkpoint: Path | None = None
    generator: Path | None = None
    metrics: Path | None = None
    interrupted: bool = False
    wall_time: float = 0.0
    # the trained G (unwrapped, on device; its moving average when cfg.ema > 0: the G that validation scored
    # and generator.pt holds) and D
    G: torch.nn.Module | None = field(default=None, repr=False, compare=False)
    D: torch.nn.Module | None = field(default=None, repr=False, compare=False)


def run_name(cfg: Config) -> str:
    """Default run name: <preset>-<variant or model>-s<seed>, e.g. ``cpu-AA+AD-s0``."""
    return f"{cfg.name}-{cfg.variant if cfg.model == 'agan' else cfg.model}-s{cfg.seed}"


def train(cfg: Config, out_dir: str | Path | None = None, resume: bool = False, progress: bool = True, *,
          overwrite: bool = False, train_set: Dataset | None = None,
          val_set: Dataset | None = None) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (default ``runs/<run_name(cfg)>``) and return a :class:`TrainResult`.

    ``resume`` continues from ``out_dir/checkpoints/last.pt`` (a fresh start when there is none);
    ``overwrite`` replaces a previous run in ``out_dir``. ``train_set``/``val_set`` replace
    ``agan.data.build_dataset(cfg, "train"/"val")`` (items: dicts with rain, clean, mask, id).
    """
    info, device = dist_.setup(pick_device(cfg.device))
    try:
        return Trainer(cfg, out_dir, resume, overwrite, progress, info, device, train_set, val_set).run()
    finally:
        dist_.teardown(info)


def _dataset(cfg: Config, split: str) -> Dataset:
    from agan.data.datasets import build_dataset  # lazy: data knows nothing of models

    return build_dataset(cfg, split)


class Trainer:
    """One run: the GAN step (``self.gan``), data, validation, logs and checkpoints. ``train()`` is the entry
    point; tests and notebooks may drive ``self.gan`` (``d_step`` / ``g_step``) directly."""

    def __init__(self, cfg, out_dir, resume, overwrite, progress, info, device, train_set, val_set):
        self.cfg, self.info, self.device, self.progress = cfg, info, device, progress
        self.out = Path(out_dir) if out_dir is not None else Path("runs") / run_name(cfg)
        ckpt = prepare_run_dir(self.out, cfg, resume, overwrite, info.is_main)
        dist_.barrier(info)  # every rank has checked the directory before rank 0 writes into it
        self.ckpt_path = self.out / "checkpoints" / "last.pt"
        self.gen_path = self.out / "checkpoints" / "generator.pt"
        self.metrics_path = self.out / "metrics.jsonl"
        self._pending_log: list[str] | None = []  # messages before the run directory exists
        set_backends(cfg, device)
        # NHWC: faster convs with oneDNN and, cuDNN-autotuned, on CUDA too
        # (docs/design.md#memory-layout-and-precision)
        self.gan = GanStep(cfg, device, self.log, channels_last=True)
        self.step, self.saved_step, self.last_metrics = 0, None, {}
        if ckpt is not None:
            self._load(ckpt)
        elif info.enabled:
            seed_all(cfg.seed + 1_000_003 * info.rank)  # per-rank augmentation streams
        self.gan.wrap(info)

        self.train_set = train_set if train_set is not None else _dataset(cfg, "train")
        val = None
        if info.is_main and (cfg.val_every > 0 or cfg.sample_every > 0):
            val = val_set if val_set is not None else _dataset(cfg, "val")
        real_sets = {d: read_pairs(d) for d in cfg.real_val_dirs} if info.is_main else {}
        self.validation = Validation(self.gan, val, real_sets, cfg)
        if info.is_main:  # everything was built: only now write into the run directory
            (self.out / "checkpoints").mkdir(parents=True, exist_ok=True)
            (self.out / "samples").mkdir(exist_ok=True)
            cfg.save(self.out / "config.json")
            with open(self.out / "train.log", "a") as f:
                f.writelines(m + "\n" for m in self._pending_log)
        self._pending_log = None

    # -- logging ---------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if not self.info.is_main:
            return
        from tqdm import tqdm

        tqdm.write(msg)
        if self._pending_log is not None:
            self._pending_log.append(msg)
            return
        with open(self.out / "train.log", "a") as f:
            f.write(msg + "\n")

    def _record(self, row: dict) -> None:
        if self.info.is_main:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")

    # -- checkpoints -----------------------------------------------------------------------------
    def _load(self, ckpt: dict) -> None:
        self.gan.load_state_dict(ckpt, where=str(self.ckpt_path))
        self.step, self.last_metrics = int(ckpt["step"]), dict(ckpt.get("metrics") or {})
        self.saved_step = self.step
        if self.info.enabled:  # RNG states are rank 0's; give each rank its own stream
            seed_all(self.cfg.seed + 1_000_003 * self.info.rank + self.step)
        else:
            restore_rng(ckpt["rng"])
        if self.info.is_main and self.metrics_path.exists():  # drop log lines past the checkpoint
            rows = [_json_row(ln) for ln in self.metrics_path.read_text().splitlines()]
            # a kill -9 may cut a line
            keep = [r for r in rows if r is not None and r.get("step", 0) <= self.step]
            self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in keep))
        self.log(f"resumed from {self.out / 'checkpoints' / 'last.pt'} at step {self.step}")

    def _save(self) -> None:
        self.saved_step = self.step
        if not self.info.is_main:
            return
        cfg = self.cfg.to_dict()
        atomic_save({"format": CHECKPOINT_FORMAT, "version": VERSION, "config": cfg, "step": self.step,
                     **self.gan.state_dict(), "rng": rng_state(), "metrics": self.last_metrics},
                    self.ckpt_path)
        G = {k: v.detach().contiguous().cpu() for k, v in self.gan.G_eval.state_dict().items()}
        atomic_save({"format": GENERATOR_FORMAT, "version": VERSION, "config": cfg, "step": self.step,
                     "G": G}, self.gen_path)

    def _last_good(self) -> str:
        return (f"the last good checkpoint is {self.ckpt_path}, step {self.saved_step}"
                if self.saved_step is not None else "no checkpoint had been written yet")

    # -- validation --------------------------------------------------------------------------------
    def _validation_point(self) -> None:
        val = self.validation.score()
        if self.gan.G_ema is not None:  # the raw G beside its average (psnr_raw, ssim_raw in metrics.jsonl)
            raw = self.validation.score(self.gan.G_bare)
            val.update(psnr_raw=raw["psnr"], ssim_raw=raw["ssim"])
        self.last_metrics["val"] = val
        self._record({"step": self.step, "split": "val", **val})
        self.log(f"step {self.step}: val PSNR {val['psnr']:.2f} dB, SSIM {val['ssim']:.4f} "
                 f"(input {val['psnr_input']:.2f} dB, {val['ssim_input']:.4f})")
        for folder, pairs in self.validation.real_sets.items():  # each set of real pairs on its own
            real = self.validation.score_real(folder)
            if folder == self.cfg.real_val_dirs[0]:
                self.last_metrics["real"] = real
            self._record({"step": self.step, "split": "real", "set": Path(folder).name, **real})
            self.log(f"step {self.step}: real PSNR {real['psnr']:.2f} dB, SSIM {real['ssim']:.4f} "
                     f"(input {real['psnr_input']:.2f} dB, {real['ssim_input']:.4f}; "
                     f"{len(pairs)} real pairs, {folder})")

    def samples(self) -> Path:
        return self.validation.samples(self.out / "samples" / f"step_{self.step:06d}.png")

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.cfg
        t0 = time.perf_counter()
        self._log_start()
        self.window, self.idle = LossWindow(self.gan.term_names, self.device), IdleMonitor()
        self._window_t, self._window_n, self._t0 = time.perf_counter(), 0, t0
        stop = StopFlag()
        stop.install()
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations, initial=self.step, disable=not (self.progress and self.info.is_main),
                   dynamic_ncols=True, desc="train")
        try:
            interrupted = self._loop(bar, stop)
        finally:
            bar.close()
            stop.restore()
        return self._finish(interrupted, stop.signum, t0)

    def _loop(self, bar, stop: StopFlag) -> bool:
        """Steps until cfg.iterations or a signal; True when interrupted."""
        cfg, info = self.cfg, self.info
        val_set = self.validation.val_set
        if self.step == 0 and val_set is not None and cfg.val_every > 0:
            self._validation_point()
            self._window_t = time.perf_counter()
        batches = (dist_.ShardedBatches(self.train_set, cfg, info, self.device).from_step(self.step)
                   if self.step < cfg.iterations else iter(()))
        for batch in batches:
            if self.step >= cfg.iterations:
                break
            terms = self.gan(self.gan.to_device(batch), self.step)
            self.step += 1
            self._window_n += 1
            self.window.add(terms, self.step)  # 1. the loss window
            bar.update(1)
            last = self.step >= cfg.iterations
            interrupted = False
            if self.step % cfg.log_every == 0 or last:  # 2. a log point
                means = self._log_point()
                bar.set_postfix({n.replace("L_", ""): f"{v:.4f}" for n, v in means.items()}, refresh=False)
                interrupted = info.enabled and dist_.any_flag(stop.signum is not None, info, self.device)
            if not info.enabled and stop.signum is not None:  # also on log steps (log_every=1)
                interrupted = True
            if interrupted:
                self.window.check_finite(info, self.device, self._last_good())
                return True
            if val_set is not None and cfg.val_every > 0 and (self.step % cfg.val_every == 0 or last):
                self._validation_point()  # 3. validation and samples
            if val_set is not None and cfg.sample_every > 0 and (self.step % cfg.sample_every == 0 or last):
                self.samples()
            if self.step % cfg.ckpt_every == 0 or last:  # 4. checkpoints
                self.window.check_finite(info, self.device, self._last_good())
                self._save()
            if last:
                return False
        if self.step < cfg.iterations:  # pragma: no cover - endless iterator
            raise RuntimeError("the training data ran out")
        return False

    def _log_point(self) -> dict[str, float]:
        """Loss-window means into metrics.jsonl (and an idle-D message when D changed); then a new window."""
        self.window.check_finite(self.info, self.device, self._last_good())
        means = self.window.means()
        rate = self._window_n / max(1e-9, time.perf_counter() - self._window_t)
        self.last_metrics["train"] = means
        self._record({"step": self.step, "split": "train", **means, "steps_per_s": rate,
                      "time": time.perf_counter() - self._t0})
        message = self.idle.update(means, self.step)  # when D stops (or starts again) telling images apart
        if message:
            self.log(message)
        self.window.reset()
        self._window_t, self._window_n = time.perf_counter(), 0
        return means

    def _log_start(self) -> None:
        cfg, info = self.cfg, self.info
        workers = dist_.resolve_workers(cfg.num_workers, self.device)
        procs = f" x{info.world_size} processes" if info.enabled else ""
        self.log(f"run {self.out}: {self.gan.describe()}, device {self.device}{procs}"
                 f"{', deterministic' if cfg.deterministic else ''}, "
                 f"{len(self.train_set)} training items{f' ({workers} loader workers)' if workers else ''}, "
                 f"optimizer {cfg.optimizer} (lr G {cfg.lr_g:g}, D {cfg.lr_d:g}, {cfg.lr_schedule}), "
                 f"steps {self.step}->{cfg.iterations}")
        self._record(run_row(self.step, self.device, self.gan.amp, self.validation.real_sets,
                             self.info.world_size))

    def _finish(self, interrupted: bool, signum, t0: float) -> TrainResult:
        cfg, info = self.cfg, self.info
        if interrupted:
            self._save()
            self.log(f"interrupted by signal {signum} at step {self.step}: checkpoint saved to "
                     f"{self.ckpt_path}; continue with --resume")
        elif self.step and not self.ckpt_path.exists():
            self._save()  # resumed past the end: make sure the files exist
        wall = time.perf_counter() - t0
        self._record(done_row(self.step, wall, interrupted))
        if self.idle.summary():
            self.log(self.idle.summary())
        end = f"{'stopped' if interrupted else 'done'}: step {self.step} in {wall:.1f} s"
        for split, label in (("val", "last val"), ("real", "real")):
            if split in self.last_metrics:
                m = self.last_metrics[split]
                end += (f"; {label} PSNR {m['psnr']:.2f} dB / SSIM {m['ssim']:.4f} "
                        f"(input {m['psnr_input']:.2f} / {m['ssim_input']:.4f})")
        self.log(end)
        return TrainResult(self.out, cfg, self.step, dict(self.last_metrics.get("train", {})),
                           dict(self.last_metrics.get("val", {})), self.ckpt_path if info.is_main else None,
                           self.gen_path if info.is_main else None, self.metrics_path, interrupted, wall,
                           self.gan.G_eval, self.gan.D_bare)
