"""What the training loop watches between log points: the loss window, non-finite values, an idle D.

Losses are accumulated on the device and read back only every ``log_every`` steps (no host sync per step).
A NaN / inf in any term stops the run naming the term and the step; a discriminator whose logits no longer
depend on its input (a dead D: the GAN term then gives G nothing) is reported when it starts and ends.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from agan.train import distributed as dist_

__all__ = ["D_IDLE_RANGE", "IdleMonitor", "LossWindow", "NonFiniteLossError"]

# D counts as idle when the spread of its logits over a step's real and fake images stays below this: a dead
# bottleneck gives exactly 0 at the cpu preset's width, ~1e-9 at the paper's (the last FC layer does not round
# identical rows identically); a live D's spread is ~0.1-1
D_IDLE_RANGE = 1e-6


class NonFiniteLossError(RuntimeError):
    """A loss term or a gradient norm became NaN or inf; the message names the term, the step and the last
    good checkpoint."""


class LossWindow:
    """Sums of the named terms since the last log point, and the first non-finite value of each."""

    def __init__(self, names: tuple[str, ...], device: torch.device):
        self.names = names
        self.sums = torch.zeros(len(names), device=device)
        self.counts = [0] * len(names)
        self.bad_step = torch.full((len(names),), -1, dtype=torch.long, device=device)
        self.bad_val = torch.zeros(len(names), device=device)

    def add(self, terms: dict[str, Tensor], step: int) -> None:
        """Accumulate one step's terms (missing ones count as absent); remember where a value first went
        bad."""
        vals = torch.stack([terms[n].detach().float() if n in terms else self.sums.new_zeros(())
                            for n in self.names])
        finite = torch.isfinite(vals)
        new_bad = ~finite & (self.bad_step < 0)
        self.bad_step = torch.where(new_bad, torch.full_like(self.bad_step, step), self.bad_step)
        self.bad_val = torch.where(new_bad, vals, self.bad_val)
        self.sums += torch.where(finite, vals, torch.zeros_like(vals))
        for j, n in enumerate(self.names):
            self.counts[j] += n in terms

    def means(self) -> dict[str, float]:
        """The window's mean of every term that occurred in it (one host sync)."""
        return {n: s / c for n, s, c in zip(self.names, self.sums.tolist(), self.counts) if c}

    def reset(self) -> None:
        self.sums.zero_()
        self.counts = [0] * len(self.names)

    def check_finite(self, info: dist_.DistInfo, device: torch.device, where: str) -> None:
        """Raise :class:`NonFiniteLossError` when any process saw a NaN / inf; ``where``: the last
        checkpoint."""
        steps = self.bad_step.tolist()
        local = any(s >= 0 for s in steps)
        if not dist_.any_flag(local, info, device):
            return
        if local:
            j = min((s, j) for j, s in enumerate(steps) if s >= 0)[1]
            v = self.bad_val[j].item()
            name = self.names[j]
            what = f"gradient norm of {name[10:]}" if name.startswith("grad_norm_") else f"loss {name}"
            raise NonFiniteLossError(f"{what} became {'nan' if math.isnan(v) else v} at step {steps[j]}; "
                                     f"training stopped ({where})")
        raise NonFiniteLossError(f"a loss became non-finite on another process; training stopped ({where})")


class IdleMonitor:
    """Counts the log windows in which D was idle (``D_range`` <= D_IDLE_RANGE) and says when that changes."""

    def __init__(self):
        self.idle, self.idle_windows, self.windows = False, 0, 0

    def update(self, means: dict[str, float], step: int) -> str | None:
        """A message when D turned idle or active again at this log point, else None."""
        if "D_range" not in means:
            return None
        self.windows += 1
        idle = means["D_range"] <= D_IDLE_RANGE
        self.idle_windows += idle
        if idle == self.idle:
            return None
        self.idle = idle
        return f"step {step}: " + (
            "D idle: the same output for every real and fake image since the last log line "
            "(L_GAN gives G nothing; D_range in metrics.jsonl)" if idle else
            "D active again (its output depends on the image)")

    def summary(self) -> str | None:
        if not self.idle_windows:
            return None
        return (f"D was idle in {self.idle_windows} of the {self.windows} logged windows of this run"
                + (", to the end" if self.idle else ""))
