"""One training step of Attentive GAN (paper Sec. 4), the one the trainer, ``agan bench`` and notebook 05 run.

    gan = GanStep(Config.preset("cpu"), device)       # G, D, the recipe's losses, two optimisers
    terms = gan(batch, step=0)                        # {"L_D": ..., "L_G": ..., ...}, 0-dim tensors

Per step (what ``agan.train.recipes`` computes for the model kind ``cfg.model``):
    1. G forward:                    A_1..A_N, S1, S2, O = G(I)
    2. D update (D's params only):   L_D = -log D(R) - log(1 - D(O.detach())) + gamma L_map      (Eqs. 8, 9)
    3. G update (D frozen):          L_G = 0.01 log(1 - D(O)) + L_ATT + L_M + L_P                (Eq. 7)
    4. the moving average of G (cfg.ema > 0; Polyak averaging, not in the paper), the gradient norms
The first ``cfg.pretrain_steps`` steps update G alone, without the GAN term. The learning rates follow
:func:`lr_factor`, a pure function of the step, so that a resumed run continues the same schedule.
"""

from __future__ import annotations

import copy
import math
import os
from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor, nn

from agan.config import Config
from agan.precision import precision_dtype, resolve_precision
from agan.train import distributed as dist_
from agan.train.recipes import Recipe
from agan.train.registry import get_recipe
from agan.train.runstate import seed_all

__all__ = ["GanStep", "amp_dtype", "ema_decay", "frozen", "lr_factor", "set_backends"]


def amp_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The training step's autocast dtype, None for fp32 (``agan.precision``, training=True)."""
    precision = resolve_precision(cfg.precision, device, training=True)
    return None if precision == "fp32" else precision_dtype(precision)


def set_backends(cfg: Config, device: torch.device) -> None:
    """cuDNN autotuning and TF32 on CUDA; deterministic kernels when cfg.deterministic (process-wide)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)  # a warning names any op without one


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


@contextmanager
def frozen(module: nn.Module | None):
    """Turn off requires_grad of ``module``'s parameters inside the block (D during the G update)."""
    if module is None:
        yield
        return
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)


def _optimizer(params, cfg: Config, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas))
    return torch.optim.RMSprop(params, lr=lr)


def _set_lr(opt: torch.optim.Optimizer | None, lr: float) -> None:
    if opt is not None:
        for group in opt.param_groups:
            group["lr"] = lr


def _grad_norm(module: nn.Module) -> Tensor:
    """L2 norm of all gradients of ``module`` (0-dim, on device, no host sync); NaN/inf if any is."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), device=next(module.parameters()).device)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


class GanStep:
    """G and D of ``cfg`` (seeded by cfg.seed), the recipe's losses, the optimisers and grad scalers, and
    the step itself. ``channels_last``: NHWC models and batches (the trainer's layout; faster convs with
    oneDNN and, cuDNN-autotuned, on CUDA). ``G`` / ``D`` are what the step calls (DDP wrappers after
    :meth:`wrap`), ``G_bare`` / ``D_bare`` the modules themselves (checkpoints, evaluation)."""

    def __init__(self, cfg: Config, device: torch.device, log=print, channels_last: bool = True):
        self.cfg, self.device = cfg, device
        self.amp = amp_dtype(cfg, device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        seed_all(cfg.seed)  # the same init on every rank, and in the bench as in the trainer
        self.recipe: Recipe = get_recipe(cfg, device, log)
        G, D = self.recipe.build()
        mf = torch.channels_last if channels_last else torch.preserve_format
        self.recipe.to(device, mf)
        self.G_bare = G.to(device, memory_format=mf)
        self.D_bare = D.to(device, memory_format=mf) if D is not None else None
        self.G_ema = copy.deepcopy(self.G_bare).requires_grad_(False) if cfg.ema > 0 else None
        self.opt_G = _optimizer(self.G_bare.parameters(), cfg, cfg.lr_g)
        self.opt_D = _optimizer(self.D_bare.parameters(), cfg, cfg.lr_d) if D is not None else None
        fp16 = self.amp == torch.float16
        self.scaler_G = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_D = torch.amp.GradScaler("cuda", enabled=fp16)
        self.G, self.D = self.G_bare, self.D_bare

    def wrap(self, info: dist_.DistInfo) -> None:
        """Wrap G and D for DistributedDataParallel (a no-op on one process)."""
        self.G = dist_.wrap(self.G_bare, info, self.device)
        self.D = dist_.wrap(self.D_bare, info, self.device)

    @property
    def term_names(self) -> tuple[str, ...]:
        """The terms a step returns: the recipe's losses, then the gradient norms of G and D (checked for
        NaN/inf like the losses), D_range, the spread of D's logits in a step: 0 = D's output ignores its
        input (a dead D), and D's mean output on clean images and on G's, D_R and D_O."""
        with_d = ("grad_norm_D", "D_range", "D_R", "D_O") if self.D_bare is not None else ()
        return (*self.recipe.loss_names, "grad_norm_G", *with_d)

    def describe(self) -> str:
        """The run log's summary of the step: model kind (and variant), parameter counts, precision."""
        cfg = self.cfg
        variant = f", variant {cfg.variant}" if cfg.model == "agan" else ""
        n_g = sum(p.numel() for p in self.G_bare.parameters())
        n_d = sum(p.numel() for p in self.D_bare.parameters()) if self.D_bare is not None else 0
        prec = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[self.amp]
        return f"model {cfg.model}{variant}, G {n_g:,d} params, D {n_d:,d} params, precision {prec}"

    @property
    def G_eval(self) -> nn.Module:
        """The G that validation scores and generator.pt holds: the moving average when cfg.ema > 0."""
        return self.G_ema if self.G_ema is not None else self.G_bare

    def autocast(self):
        return nullcontext() if self.amp is None else torch.autocast(self.device.type, dtype=self.amp)

    def to_device(self, batch: dict) -> dict:
        """A batch of the data loader on the step's device, in its memory format (ids stay on the host)."""
        return {k: (v.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
                    if torch.is_tensor(v) else v) for k, v in batch.items()}

    # -- the step --------------------------------------------------------------------------------------
    def __call__(self, batch: dict, step: int) -> dict[str, Tensor]:
        """One training step after ``step`` completed ones, on a batch already on the device."""
        cfg = self.cfg
        adversarial = self.D is not None and step >= cfg.pretrain_steps
        f = lr_factor(cfg, step)
        _set_lr(self.opt_G, cfg.lr_g * f)
        _set_lr(self.opt_D, cfg.lr_d * f)
        with self.autocast():  # 1. G forward
            out = self.recipe.generate(self.G, batch)  # A_1..A_N, S1, S2, O
        terms = self.d_step(batch, out) if adversarial else {}  # 2. D update
        terms.update(self.g_step(batch, out, adversarial))  # 3. G update, D frozen
        if self.G_ema is not None:  # 4. moving average, gradient norms
            self.update_ema(step)
        if not self.scaler_G.is_enabled():  # (fp16's GradScaler skips steps with inf gradients by itself)
            terms["grad_norm_G"] = _grad_norm(self.G_bare)  # this step's gradients, still in .grad
            if adversarial:
                terms["grad_norm_D"] = _grad_norm(self.D_bare)
        return terms

    def d_step(self, batch: dict, out) -> dict[str, Tensor]:
        """One update of D's parameters on L_D (the fake O is detached inside the recipe)."""
        with self.autocast():
            L_D, terms = self.recipe.d_loss(self.D, batch, out)
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler_D.scale(L_D).backward()
        self.scaler_D.step(self.opt_D)
        self.scaler_D.update()
        return terms

    def g_step(self, batch: dict, out, adversarial: bool) -> dict[str, Tensor]:
        """One update of G's parameters on L_G, with D frozen (no gradients reach D's parameters)."""
        with frozen(self.D_bare), self.autocast():
            L_G, terms = self.recipe.g_loss(self.D_bare, batch, out, adversarial)
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler_G.scale(L_G).backward()
        self.scaler_G.step(self.opt_G)
        self.scaler_G.update()
        return terms

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        """G_ema <- d G_ema + (1 - d) G, d = ema_decay(step) (one fused pass over the parameters)."""
        torch._foreach_lerp_(list(self.G_ema.parameters()), [p.detach() for p in self.G_bare.parameters()],
                             1.0 - ema_decay(self.cfg, step))

    # -- checkpoints -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Models, optimisers and scalers, under the keys of the run checkpoint (checkpoints/last.pt)."""
        return {"G": self.G_bare.state_dict(), "D": self.D_bare.state_dict() if self.D_bare else None,
                "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict() if self.opt_D else None,
                "scaler_G": self.scaler_G.state_dict(), "scaler_D": self.scaler_D.state_dict()}

    def load_state_dict(self, ckpt: dict, where: str = "the checkpoint") -> None:
        """Restore :meth:`state_dict`'s keys; a saved model that does not fit this config: one clear line."""
        for name, module, key in (("generator", self.G_bare, "G"), ("discriminator", self.D_bare, "D")):
            if module is None:
                continue
            try:
                module.load_state_dict(ckpt[key])
            except RuntimeError as e:  # e.g. a run written by an agan version whose layers differ
                first = next((ln.strip() for ln in str(e).splitlines()
                              if "size mismatch" in ln or "Missing" in ln or "Unexpected" in ln),
                             str(e).splitlines()[0])
                raise ValueError(f"{where}: the saved {name} does not fit the one this version of agan "
                                 f"builds from the run's config ({first}); resume it with the agan version "
                                 f"that wrote it, or start a new run") from None
        if self.G_ema is not None:  # a run that started without an average starts one from its G
            self.G_ema.load_state_dict(ckpt.get("G_ema") or ckpt["G"])
        self.opt_G.load_state_dict(ckpt["opt_G"])
        if self.D_bare is not None:
            self.opt_D.load_state_dict(ckpt["opt_D"])
        for scaler, key in ((self.scaler_G, "scaler_G"), (self.scaler_D, "scaler_D")):
            if ckpt.get(key) and scaler.is_enabled():
                scaler.load_state_dict(ckpt[key])
