"""The training loop of Attentive GAN (paper Sec. 4) and its ablations, on one device or many.

Reference: R. Qian et al., "Attentive Generative Adversarial Network for Raindrop Removal from A
Single Image", CVPR 2018, Sec. 4 (losses: Eqs. 4-9, docs/paper.md#losses). The authors released no
training code; the optimiser is the kit's documented choice (Adam 5e-4, betas 0.5/0.99; or RMSprop
2e-5 G / 1e-5 D with generator pre-training).

Per step (``agan.train.recipes`` says what each model kind computes):
    1. G forward:                     A_1..A_N, S1, S2, O = G(I)
    2. D update (D's params only):    L_D = -log D(R) - log(1 - D(O.detach())) + gamma L_map
    3. G update (D frozen):           L_G = 0.01 log(1 - D(O)) + L_ATT + L_M + L_P
The first ``cfg.pretrain_steps`` steps update G alone, without the GAN term. With ``cfg.ema`` > 0 a
moving average of G's weights (Polyak averaging, not in the paper) is kept beside G: it is what
validation scores (the raw G is scored beside it: psnr_raw, ssim_raw) and what generator.pt holds
(the raw G stays in last.pt for resuming).

    from agan import Config
    from agan.train.loop import train
    result = train(Config.preset("cpu"), "runs/demo")       # -> TrainResult

A run directory holds config.json, metrics.jsonl (one JSON object per log/validation point,
loss names from ``agan.losses.LOSS_NAMES``), train.log, samples/step_XXXXXX.png (input, A_1..A_N,
O, clean) and checkpoints/last.pt (+ generator.pt for inference). Losses are accumulated on the
device and read back only every ``log_every`` steps (no host sync per step); a NaN/inf stops the
run naming the term and step, leaving the last good checkpoint in place. SIGINT/SIGTERM save a
checkpoint and return (``interrupted=True``); ``resume=True`` continues bit-exactly on CPU.
Multi-GPU: ``torchrun --nproc_per_node=K -m agan.train ...`` (see ``agan.train.distributed``).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from agan.train import distributed as dist_
from agan import pick_device
from agan.checkpoint import atomic_save
from agan.config import Config
from agan.evaluation.protocol import read_pairs
from agan.train.recipes import RECIPES, Recipe, get_recipe, register_recipe
from agan.train.runstate import (
    CHECKPOINT_FORMAT,
    GENERATOR_FORMAT,
    RESUMABLE_KEYS,
    VERSION,
    StopFlag,
    frozen,
    prepare_run_dir,
    restore_rng,
    rng_state,
    sample_grid,
    seed_all,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "GENERATOR_FORMAT",
    "RECIPES",
    "RESUMABLE_KEYS",
    "NonFiniteLossError",
    "Recipe",
    "TrainResult",
    "Trainer",
    "register_recipe",
    "run_name",
    "train",
]

class NonFiniteLossError(RuntimeError):
    """A loss term or a gradient norm became NaN or inf; the message names the term, the step and the last
    good checkpoint."""


def _grad_norm(module: torch.nn.Module) -> torch.Tensor:
    """L2 norm of all gradients of ``module`` (0-dim, on device, no host sync); NaN/inf if any is."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), device=next(module.parameters()).device)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


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
    G: torch.nn.Module | None = field(default=None, repr=False, compare=False)  # trained G (unwrapped, on device;
    # its moving average when cfg.ema > 0: the G that validation scored and generator.pt holds)
    D: torch.nn.Module | None = field(default=None, repr=False, compare=False)


def run_name(cfg: Config) -> str:
    """Default run name: <preset>-<variant or model>-s<seed>, e.g. ``cpu-AA+AD-s0``."""
    return f"{cfg.name}-{cfg.variant if cfg.model == 'agan' else cfg.model}-s{cfg.seed}"


def train(cfg: Config, out_dir: str | Path | None = None, resume: bool = False, progress: bool = True, *,
          overwrite: bool = False, train_set: Dataset | None = None, val_set: Dataset | None = None) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (default ``runs/<run_name(cfg)>``) and return a :class:`TrainResult`.

    ``resume`` continues from ``out_dir/checkpoints/last.pt`` (a fresh start when there is none);
    ``overwrite`` replaces a previous run in ``out_dir``. ``train_set``/``val_set`` replace
    ``agan.data.datasets.build_dataset(cfg, "train"/"val")`` (items: dicts with rain, clean, mask, id).
    """
    info, device = dist_.setup(pick_device(cfg.device))
    try:
        return Trainer(cfg, out_dir, resume, overwrite, progress, info, device, train_set, val_set).run()
    finally:
        dist_.teardown(info)


# ------------------------------------------------------------------------------------------------
def _precision(cfg: Config, device: torch.device) -> torch.dtype | None:
    """Autocast dtype or None (fp32). auto: bf16 (fp16 on older GPUs) on CUDA; on CPU bf16 where the CPU
    has native bf16 dot products (avx512_bf16 / AMX / Arm bf16: ~4.5 vs ~3.0 steps/s for the cpu preset on our
    2 cores, benchmarks/bench_train.py), else fp32 (emulated bf16 would be slower)."""
    p = cfg.precision
    if p == "auto":
        if device.type != "cuda":
            from agan.infer.fast import cpu_has_fast_bf16  # lazy: fast imports the generator only

            return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else None
        try:  # native bf16 only (Ampere and newer); emulated bf16 on a T4 is slower than fp16
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch
            native = torch.cuda.is_bf16_supported()
        return torch.bfloat16 if native else torch.float16
    if p == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs CUDA; use 'bf16' or 'fp32' on CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[p]


def _optimizer(params, cfg: Config, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas))
    return torch.optim.RMSprop(params, lr=lr)


def lr_factor(cfg: Config, step: int) -> float:
    """Multiplier of lr_g / lr_d for the update that follows ``step`` completed steps. A pure function
    of the step (no scheduler state), so ``--resume`` continues the same schedule; extending a run
    with ``--iterations`` stretches a cosine schedule to the new end."""
    if cfg.lr_schedule == "constant" or cfg.iterations <= 0:
        return 1.0
    t = min(1.0, max(0.0, step / cfg.iterations))
    return cfg.lr_final + (1.0 - cfg.lr_final) * 0.5 * (1.0 + math.cos(math.pi * t))


def ema_decay(cfg: Config, step: int) -> float:
    """Decay of G's moving average at the update after ``step`` completed steps: cfg.ema, warmed up as
    (1 + step) / (10 + step) so that the average soon forgets the random init. A pure function of the step."""
    return min(cfg.ema, (1.0 + step) / (10.0 + step))


def _set_lr(opt: torch.optim.Optimizer | None, lr: float) -> None:
    if opt is not None:
        for group in opt.param_groups:
            group["lr"] = lr


def _dataset(cfg: Config, split: str) -> Dataset:
    from agan.data.datasets import build_dataset  # lazy: data knows nothing of models

    return build_dataset(cfg, split)


# D counts as idle when the spread of its logits over a step's real and fake images stays below this: a dead
# bottleneck gives exactly 0 at the cpu preset's width, ~1e-9 at the paper's (the last FC layer does not round
# identical rows identically); a live D's spread is ~0.1-1
D_IDLE_RANGE = 1e-6


class Trainer:
    """One run: models, optimisers, data, logs. ``train()`` is the entry point; tests and notebooks may
    drive ``d_step``/``g_step`` directly."""

    def __init__(self, cfg, out_dir, resume, overwrite, progress, info, device, train_set, val_set):
        self.cfg, self.info, self.device, self.progress = cfg, info, device, progress
        self.out = Path(out_dir) if out_dir is not None else Path("runs") / run_name(cfg)
        ckpt = prepare_run_dir(self.out, cfg, resume, overwrite, info.is_main)
        dist_.barrier(info)  # every rank has checked the directory before rank 0 writes into it
        self.ckpt_path = self.out / "checkpoints" / "last.pt"
        self.gen_path = self.out / "checkpoints" / "generator.pt"
        self.metrics_path = self.out / "metrics.jsonl"
        self._pending_log: list[str] | None = []  # messages before the run directory exists
        self.amp = _precision(cfg, device)
        # NHWC: faster convs with oneDNN and, in training (cuDNN autotuned), on CUDA too: the paper preset ran at
        # 31.7 steps/s NHWC vs 26.0 NCHW under bf16 on an H100 (inference differs: agan.infer.fast.use_channels_last)
        self.channels_last = True
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.deterministic
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        if cfg.deterministic:  # process-wide, like the cuDNN switches above
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
            torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True, warn_only=True)  # a warning names any op without one

        seed_all(cfg.seed)  # same init on every rank
        self.recipe: Recipe = get_recipe(cfg, device, self.log)
        G, D = self.recipe.build()
        mf = torch.channels_last if self.channels_last else torch.preserve_format
        self.recipe.to(device, mf)
        self.G_bare = G.to(device, memory_format=mf)
        self.D_bare = D.to(device, memory_format=mf) if D is not None else None
        self.G_ema = None  # the moving average of G's weights (cfg.ema > 0), never trained itself
        if cfg.ema > 0:
            self.G_ema = copy.deepcopy(self.G_bare).requires_grad_(False)
        self.opt_G = _optimizer(self.G_bare.parameters(), cfg, cfg.lr_g)
        self.opt_D = _optimizer(self.D_bare.parameters(), cfg, cfg.lr_d) if D is not None else None
        fp16 = self.amp == torch.float16
        self.scaler_G = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_D = torch.amp.GradScaler("cuda", enabled=fp16)
        self.step, self.saved_step, self.last_metrics = 0, None, {}
        if ckpt is not None:
            self._load(ckpt)
        elif info.enabled:
            seed_all(cfg.seed + 1_000_003 * info.rank)  # per-rank augmentation streams
        self.G = dist_.wrap(self.G_bare, info, device)
        self.D = dist_.wrap(self.D_bare, info, device)

        self.train_set = train_set if train_set is not None else _dataset(cfg, "train")
        self.val_set = None
        if info.is_main and (cfg.val_every > 0 or cfg.sample_every > 0):
            self.val_set = val_set if val_set is not None else _dataset(cfg, "val")
        self._identity: dict[str, float] | None = None
        self.real_pairs = read_pairs(cfg.real_val) if info.is_main and cfg.real_val else []
        self._real_identity: dict[str, float] | None = None
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
        for name, module, key in (("generator", self.G_bare, "G"), ("discriminator", self.D_bare, "D")):
            if module is None:
                continue
            try:
                module.load_state_dict(ckpt[key])
            except RuntimeError as e:  # e.g. a run from before narrow D layers were kept >= 4 channels wide
                first = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln or "Missing" in ln
                              or "Unexpected" in ln), str(e).splitlines()[0])
                raise ValueError(f"{self.ckpt_path}: the saved {name} does not fit the one this version of agan "
                                 f"builds from the run's config ({first}); resume it with the agan version that "
                                 f"wrote it, or start a new run") from None
        if self.G_ema is not None:  # a run that started without an average starts one from its G
            self.G_ema.load_state_dict(ckpt.get("G_ema") or ckpt["G"])
        self.opt_G.load_state_dict(ckpt["opt_G"])
        if self.D_bare is not None:
            self.opt_D.load_state_dict(ckpt["opt_D"])
        for scaler, key in ((self.scaler_G, "scaler_G"), (self.scaler_D, "scaler_D")):
            if ckpt.get(key) and scaler.is_enabled():
                scaler.load_state_dict(ckpt[key])
        self.step, self.last_metrics = int(ckpt["step"]), dict(ckpt.get("metrics") or {})
        self.saved_step = self.step
        if self.info.enabled:  # RNG states are rank 0's; give each rank its own stream
            seed_all(self.cfg.seed + 1_000_003 * self.info.rank + self.step)
        else:
            restore_rng(ckpt["rng"])
        if self.info.is_main and self.metrics_path.exists():  # drop log lines past the checkpoint
            rows = [_json_row(ln) for ln in self.metrics_path.read_text().splitlines()]
            keep = [r for r in rows if r is not None and r.get("step", 0) <= self.step]  # a kill -9 may cut a line
            self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in keep))
        self.log(f"resumed from {self.out / 'checkpoints' / 'last.pt'} at step {self.step}")

    def _save(self) -> None:
        self.saved_step = self.step
        if not self.info.is_main:
            return
        cfg = self.cfg.to_dict()
        atomic_save({"format": CHECKPOINT_FORMAT, "version": VERSION, "config": cfg, "step": self.step,
                     "G": self.G_bare.state_dict(), "D": self.D_bare.state_dict() if self.D_bare else None,
                     "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
                     "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict() if self.opt_D else None,
                     "scaler_G": self.scaler_G.state_dict(), "scaler_D": self.scaler_D.state_dict(),
                     "rng": rng_state(), "metrics": self.last_metrics}, self.ckpt_path)
        G = {k: v.detach().contiguous().cpu() for k, v in self.G_eval.state_dict().items()}
        atomic_save({"format": GENERATOR_FORMAT, "version": VERSION, "config": cfg, "step": self.step, "G": G},
                    self.gen_path)

    # -- validation and samples ------------------------------------------------------------------
    @property
    def G_eval(self) -> torch.nn.Module:
        """The G that validation scores and generator.pt holds: the moving average when cfg.ema > 0."""
        return self.G_ema if self.G_ema is not None else self.G_bare

    def _autocast(self):
        if self.amp is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def _val_item(self, i: int):
        from agan.images import crop_to_multiple

        item = self.val_set[i]
        return {k: crop_to_multiple(item[k]) for k in ("rain", "clean", "mask")}

    @torch.no_grad()
    def _generate(self, batch: dict, G: torch.nn.Module | None = None):
        G = self.G_eval if G is None else G
        G.eval()
        try:
            with self._autocast():
                batch = {k: v.to(self.device) for k, v in batch.items()}
                return batch, self.recipe.generate(G, batch)
        finally:
            G.train()

    def validate(self, G: torch.nn.Module | None = None) -> dict[str, float]:
        """Mean PSNR / SSIM of ``G`` (default :attr:`G_eval`) on the validation split, and of the input."""
        from agan.evaluation.protocol import score_pair
        from agan.images import to_uint8

        first = self._identity is None
        scores = []
        for i in range(len(self.val_set)):
            item = self._val_item(i)
            _, out = self._generate({k: v[None] for k, v in item.items()}, G)
            O = self.recipe.output(out)[0].float().permute(1, 2, 0).cpu().numpy()  # (H, W, 3) float
            gt = to_uint8(item["clean"])
            ident = score_pair(item["rain"].permute(1, 2, 0).numpy(), gt) if first else (0.0, 0.0)
            scores.append((*score_pair(O, gt), *ident))
        n = max(1, len(scores))
        psnr, ssim, psnr_in, ssim_in = (sum(s[j] for s in scores) / n for j in range(4))
        if first:
            self._identity = {"psnr_input": psnr_in, "ssim_input": ssim_in}
        return {"psnr": psnr, "ssim": ssim, **self._identity}

    def real_validate(self, G: torch.nn.Module | None = None) -> dict[str, float]:
        """Mean PSNR / SSIM (Y, authors' protocol) of ``G`` on the real pairs of ``cfg.real_val``, each derained
        whole, as ``agan derain`` does (``agan.infer.pipeline.derain_tensor`` with ``cfg.derain_size`` / ``derain_smooth`` /
        ``derain_blend``), and of the input."""
        from agan.evaluation.protocol import score_pair
        from agan.infer.pipeline import derain_tensor

        G = self.G_eval if G is None else G
        G.eval()
        scores = []
        try:
            for rain, clean in self.real_pairs:
                x = torch.from_numpy(rain).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)
                O, _ = derain_tensor(G, x, precision="auto", device=self.device, size=self.cfg.derain_size,
                                     smooth=self.cfg.derain_smooth, blend=self.cfg.derain_blend)
                scores.append(score_pair(O[0].permute(1, 2, 0).numpy(), clean))
        finally:
            G.train()
        if self._real_identity is None:
            ident = [score_pair(r, c) for r, c in self.real_pairs]
            self._real_identity = {"psnr_input": sum(p for p, _ in ident) / len(ident),
                                   "ssim_input": sum(q for _, q in ident) / len(ident)}
        n = len(scores)
        return {"psnr": sum(p for p, _ in scores) / n, "ssim": sum(q for _, q in scores) / n, **self._real_identity}

    def samples(self) -> Path:
        from agan.images import write_image

        k = min(4, len(self.val_set))
        items = [self._val_item(i) for i in range(k)]
        h = min(it["rain"].shape[-2] for it in items)
        w = min(it["rain"].shape[-1] for it in items)
        batch = {key: torch.stack([it[key][..., :h, :w] for it in items]) for key in ("rain", "clean", "mask")}
        batch, out = self._generate(batch)
        path = self.out / "samples" / f"step_{self.step:06d}.png"
        write_image(path, sample_grid([p.float() for p in self.recipe.panels(batch, out)]))
        return path

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg, info, device = self.cfg, self.info, self.device
        # loss terms, then the gradient norms of G and D (checked for NaN/inf like the losses)
        # and D_range, the spread of D's logits in a step: 0 = D's output ignores its input (a dead D)
        names = (*self.recipe.loss_names, "grad_norm_G",
                 *(("grad_norm_D", "D_range") if self.D_bare is not None else ()))
        d_idle, idle_windows, windows = False, 0, 0
        t0 = time.perf_counter()
        n_g = sum(p.numel() for p in self.G_bare.parameters())
        n_d = sum(p.numel() for p in self.D_bare.parameters()) if self.D_bare is not None else 0
        workers = dist_.resolve_workers(cfg.num_workers, device)
        prec = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[self.amp]
        self.log(f"run {self.out}: model {cfg.model}" + (f", variant {cfg.variant}" if cfg.model == "agan" else "") + f", G {n_g:,d} params, D {n_d:,d} params, "
                 f"device {device}{f' x{info.world_size} processes' if info.enabled else ''}, "
                 f"precision {prec}{', deterministic' if cfg.deterministic else ''}, {len(self.train_set)} training items"
                 f"{f' ({workers} loader workers)' if workers else ''}, "
                 f"optimizer {cfg.optimizer} (lr G {cfg.lr_g:g}, D {cfg.lr_d:g}, {cfg.lr_schedule}), steps {self.step}->{cfg.iterations}")
        stop = StopFlag()
        stop.install()
        sums = torch.zeros(len(names), device=device)
        counts = [0] * len(names)
        bad_step = torch.full((len(names),), -1, dtype=torch.long, device=device)
        bad_val = torch.zeros(len(names), device=device)
        window_t, window_n = time.perf_counter(), 0
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations, initial=self.step, disable=not (self.progress and info.is_main),
                   dynamic_ncols=True, desc="train")
        mf = torch.channels_last if self.channels_last else torch.contiguous_format
        interrupted = False
        try:
            if self.step == 0 and self.val_set is not None and cfg.val_every > 0:
                self._validation_point()
                window_t = time.perf_counter()
            batches = self._batches().from_step(self.step) if self.step < cfg.iterations else iter(())
            for batch in batches:
                if self.step >= cfg.iterations:
                    break
                batch = {k: (v.to(device, non_blocking=True).contiguous(memory_format=mf) if torch.is_tensor(v) else v)
                         for k, v in batch.items()}
                terms = self._train_step(batch)
                self.step += 1
                window_n += 1
                vals = torch.stack([terms[n].detach().float() if n in terms else sums.new_zeros(()) for n in names])
                finite = torch.isfinite(vals)
                new_bad = ~finite & (bad_step < 0)
                bad_step = torch.where(new_bad, torch.full_like(bad_step, self.step), bad_step)
                bad_val = torch.where(new_bad, vals, bad_val)
                sums += torch.where(finite, vals, torch.zeros_like(vals))
                for j, n in enumerate(names):
                    counts[j] += n in terms
                bar.update(1)
                last = self.step >= cfg.iterations
                if self.step % cfg.log_every == 0 or last:
                    self._check_finite(bad_step, bad_val, names)
                    means = {n: s / c for n, s, c in zip(names, sums.tolist(), counts) if c}
                    rate = window_n / max(1e-9, time.perf_counter() - window_t)
                    self.last_metrics["train"] = means
                    self._record({"step": self.step, "split": "train", **means, "steps_per_s": rate,
                                  "time": time.perf_counter() - t0})
                    bar.set_postfix({n.replace("L_", ""): f"{v:.4f}" for n, v in means.items()}, refresh=False)
                    if "D_range" in means:  # say when D stops (or starts again) telling images apart
                        windows += 1
                        idle = means["D_range"] <= D_IDLE_RANGE
                        idle_windows += idle
                        if idle != d_idle:
                            d_idle = not d_idle
                            self.log(f"step {self.step}: " + (
                                "D idle: the same output for every real and fake image since the last log line "
                                "(L_GAN gives G nothing; D_range in metrics.jsonl)" if d_idle else
                                "D active again (its output depends on the image)"))
                    sums.zero_()
                    counts = [0] * len(names)
                    window_t, window_n = time.perf_counter(), 0
                    if info.enabled and dist_.any_flag(stop.signum is not None, info, device):
                        interrupted = True
                if not info.enabled and stop.signum is not None:  # also on log steps (log_every=1)
                    interrupted = True
                if interrupted:
                    self._check_finite(bad_step, bad_val, names)
                    break
                if self.val_set is not None and cfg.val_every > 0 and (self.step % cfg.val_every == 0 or last):
                    self._validation_point()
                if self.val_set is not None and cfg.sample_every > 0 and (self.step % cfg.sample_every == 0 or last):
                    self.samples()
                if self.step % cfg.ckpt_every == 0 or last:
                    self._check_finite(bad_step, bad_val, names)
                    self._save()
                if last:
                    break
            if not interrupted and self.step < cfg.iterations:  # pragma: no cover - endless iterator
                raise RuntimeError("the training data ran out")
        finally:
            bar.close()
            stop.restore()
        if interrupted:
            self._save()
            self.log(f"interrupted by signal {stop.signum} at step {self.step}: checkpoint saved to "
                     f"{self.ckpt_path}; continue with --resume")
        elif self.step and not self.ckpt_path.exists():
            self._save()  # resumed past the end: make sure the files exist
        wall = time.perf_counter() - t0
        if idle_windows:
            self.log(f"D was idle in {idle_windows} of the {windows} logged windows of this run"
                     + (", to the end" if d_idle else ""))
        self.log(f"{'stopped' if interrupted else 'done'}: step {self.step} in {wall:.1f} s" + (
            f"; last val PSNR {self.last_metrics['val']['psnr']:.2f} dB / SSIM {self.last_metrics['val']['ssim']:.4f} "
            f"(input {self.last_metrics['val']['psnr_input']:.2f} / {self.last_metrics['val']['ssim_input']:.4f})"
            if "val" in self.last_metrics else "") + (
            f"; real PSNR {self.last_metrics['real']['psnr']:.2f} dB / SSIM {self.last_metrics['real']['ssim']:.4f} "
            f"(input {self.last_metrics['real']['psnr_input']:.2f} / {self.last_metrics['real']['ssim_input']:.4f})"
            if "real" in self.last_metrics else ""))
        return TrainResult(self.out, cfg, self.step, dict(self.last_metrics.get("train", {})),
                           dict(self.last_metrics.get("val", {})), self.ckpt_path if info.is_main else None,
                           self.gen_path if info.is_main else None, self.metrics_path, interrupted, wall,
                           self.G_eval, self.D_bare)

    def _batches(self) -> dist_.ShardedBatches:
        return dist_.ShardedBatches(self.train_set, self.cfg, self.info, self.device)

    def _train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        adversarial = self.D is not None and self.step >= self.cfg.pretrain_steps
        f = lr_factor(self.cfg, self.step)
        _set_lr(self.opt_G, self.cfg.lr_g * f)
        _set_lr(self.opt_D, self.cfg.lr_d * f)
        with self._autocast():
            out = self.recipe.generate(self.G, batch)  # A_1..A_N, S1, S2, O
        terms = self.d_step(batch, out) if adversarial else {}
        terms.update(self.g_step(batch, out, adversarial))
        if self.G_ema is not None:
            self._update_ema()
        if not self.scaler_G.is_enabled():  # (fp16's GradScaler skips steps with inf gradients by itself)
            terms["grad_norm_G"] = _grad_norm(self.G_bare)  # this step's gradients, still in .grad
            if adversarial:
                terms["grad_norm_D"] = _grad_norm(self.D_bare)
        return terms

    def d_step(self, batch: dict, out) -> dict[str, torch.Tensor]:
        """One update of D's parameters on L_D (the fake O is detached inside the recipe)."""
        with self._autocast():
            L_D, terms = self.recipe.d_loss(self.D, batch, out)
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler_D.scale(L_D).backward()
        self.scaler_D.step(self.opt_D)
        self.scaler_D.update()
        return terms

    def g_step(self, batch: dict, out, adversarial: bool) -> dict[str, torch.Tensor]:
        """One update of G's parameters on L_G, with D frozen (no gradients reach D's parameters)."""
        with frozen(self.D_bare), self._autocast():
            L_G, terms = self.recipe.g_loss(self.D_bare, batch, out, adversarial)
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler_G.scale(L_G).backward()
        self.scaler_G.step(self.opt_G)
        self.scaler_G.update()
        return terms

    @torch.no_grad()
    def _update_ema(self) -> None:
        """G_ema <- d G_ema + (1 - d) G, d = ema_decay(step) (one fused pass over the parameters)."""
        torch._foreach_lerp_(list(self.G_ema.parameters()), [p.detach() for p in self.G_bare.parameters()],
                             1.0 - ema_decay(self.cfg, self.step))

    def _check_finite(self, bad_step: torch.Tensor, bad_val: torch.Tensor, names) -> None:
        steps = bad_step.tolist()
        local = any(s >= 0 for s in steps)
        if not dist_.any_flag(local, self.info, self.device):
            return
        where = (f"the last good checkpoint is {self.ckpt_path}, step {self.saved_step}"
                 if self.saved_step is not None else "no checkpoint had been written yet")
        if local:
            j = min((s, j) for j, s in enumerate(steps) if s >= 0)[1]
            v = bad_val[j].item()
            what = f"gradient norm of {names[j][10:]}" if names[j].startswith("grad_norm_") else f"loss {names[j]}"
            raise NonFiniteLossError(f"{what} became {'nan' if math.isnan(v) else v} at step {steps[j]}; "
                                     f"training stopped ({where})")
        raise NonFiniteLossError(f"a loss became non-finite on another process; training stopped ({where})")

    def _validation_point(self) -> None:
        val = self.validate()
        if self.G_ema is not None:  # the raw G beside its average (psnr_raw, ssim_raw in metrics.jsonl)
            raw = self.validate(self.G_bare)
            val.update(psnr_raw=raw["psnr"], ssim_raw=raw["ssim"])
        self.last_metrics["val"] = val
        self._record({"step": self.step, "split": "val", **val})
        self.log(f"step {self.step}: val PSNR {val['psnr']:.2f} dB, SSIM {val['ssim']:.4f} "
                 f"(input {val['psnr_input']:.2f} dB, {val['ssim_input']:.4f})")
        if self.real_pairs:
            real = self.real_validate()
            self.last_metrics["real"] = real
            self._record({"step": self.step, "split": "real", **real})
            self.log(f"step {self.step}: real PSNR {real['psnr']:.2f} dB, SSIM {real['ssim']:.4f} "
                     f"(input {real['psnr_input']:.2f} dB, {real['ssim_input']:.4f}; {len(self.real_pairs)} "
                     f"real pairs, {self.cfg.real_val})")
