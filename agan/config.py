"""One typed config for every knob, with named presets, saved as JSON beside every run.

    cfg = Config.preset("cpu", iterations=300)       # preset + overrides
    cfg = cfg.override(["lr_g=1e-4", "variant=A"])   # CLI / papermill style "key=value" strings
    cfg.save("runs/x/config.json"); Config.load("runs/x/config.json")

Presets
    paper  the paper's constants (docs/paper.md#losses): full width, N = 4 steps, 224x224 crops, batch 2,
           ImageNet VGG16.
    cpu    the same topology, narrower and on small crops, so that a useful run fits in
           ~15 minutes on 2 CPU cores; without L_P (ImageNet VGG16 weights cannot be downloaded
           offline; the log says so), unless ``vgg_weights`` is given on the command line.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["Config", "PRESETS", "VARIANTS"]

# the scalar field types a value is checked against: (accepted Python types, words for the error message)
_SCALAR_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "bool": ((bool,), "true or false"),
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "float | None": ((int, float, type(None)), "a number or null"),
    "str": ((str,), "a string"),
}

# ablation variants of Table 1: (attentive-recurrent network?, discriminator: None | "plain" | "attentive")
VARIANTS: dict[str, tuple[bool, str | None]] = {
    "A": (False, None),
    "A+D": (False, "plain"),
    "A+AD": (False, "attentive"),
    "AA+AD": (True, "attentive"),
}


@dataclass
class Config:
    name: str = "paper"
    # --- model -------------------------------------------------------------------------------
    model: str = "agan"  # agan | eigen13 | pix2pix
    variant: str = "AA+AD"  # A | A+D | A+AD | AA+AD (full); see VARIANTS
    width: float = 1.0  # generator channel multiplier (1.0 = paper, 6,244,362 parameters)
    arn_width: float | None = None  # the attentive-recurrent network's channel multiplier (None = width)
    steps: int = 4  # N, recurrent attention steps
    disc_width: float = 1.0  # discriminator channel multiplier
    disc_pool: int = 14  # D's features pooled to pool x pool before FC (14 = identity at 224)
    # --- losses (paper Sec. 4) -----------------------------------------------------------------
    theta: float = 0.8  # L_ATT step decay
    lambdas: tuple[float, float, float] = (0.6, 0.8, 1.0)  # L_M weights for S1, S2, O
    gamma: float = 0.05  # weight of L_map in L_D
    adv_weight: float = 0.01  # weight of log(1 - D(O)) in L_G
    map_target: str = "attention"  # D_map target for fakes: "attention" (A_N, paper) | "mask" (M)
    vgg_weights: str = "imagenet"  # "imagenet" | "random" (explicit, not the paper) | path to vgg16 .pth
    vgg_layers: tuple[str, ...] = ("relu1_1", "relu1_2", "relu2_1", "relu2_2")
    vgg_layer_weights: tuple[float, ...] | None = None  # None = all 1
    perceptual_weight: float = 1.0
    # --- data ----------------------------------------------------------------------------------
    data: str = "synthetic"  # "synthetic" (on the fly) | a folder in the Raindrop layout
    val_data: str = ""  # held-out folder; "" = synthetic validation split (different seed)
    crop_size: int = 224
    batch_size: int = 2
    flip: bool = True
    mask_threshold: int = 30  # M: |rain - clean| >= 30/255 in any channel (docs/paper.md#raindrop-mask)
    mask_dilate: bool = False  # optional 3x3 dilation of M
    # M for synthetic pairs: "difference" (the paper's rule for real data: |rain - clean| >= mask_threshold, which
    # also marks the glass's haze) | "drops" (the exact drop layer the synthesiser drew: blur(alpha) >= 0.3)
    mask_source: str = "difference"
    # the longer image side (px) at which agan derain / derain() run G on a photo by default, saved with the
    # weights; 0 = full resolution. A model trained on drops drawn as in a frame_px-wide frame sees real drops
    # at that scale: O = I + up(G(down(I)) - down(I)) keeps the finer detail of the input (agan.infer.pipeline)
    derain_size: int = 0
    # how agan derain applies G's change D = G(I) - I at that scale (both off = the paper's O, used as G gives it):
    # derain_smooth  sigma (px at G's scale) of a Gaussian that smooths D first: defocused drops change an image
    #                smoothly, so D's finer part is G's reconstruction error (blur, noise), not drops
    # derain_blend   "attention": D weighted by clip(A_N, 0, 1), the attention map of paper Sec. 4.1, so that
    #                regions G did not find drops in stay as they were; "none": D everywhere
    derain_smooth: float = 0.0
    derain_blend: str = "none"
    val_size: int = 16
    # real rainy/clean pairs (a folder in any layout agan eval reads, any image size) scored at every
    # validation point at full resolution, as agan derain would derain them (derain_size), beside the
    # synthetic split and the rainy input's own score: a model is judged on real photos; "" = none
    real_val: str = ""
    # DataLoader worker processes for the training batches; -1 = auto: min(4, CPUs per GPU process - 1) on CUDA
    # (the paper preset on an H100: 11.2 steps/s with the synthesiser in the main process, 26-32 with 4 workers),
    # 0 on the CPU (the cpu preset: 1% from a worker on our 2 cores)
    num_workers: int = -1
    # --- optimisation (the paper gives none; see README) ---------------------------------------
    optimizer: str = "adam"  # adam (5e-4, betas 0.5/0.99) | rmsprop (2e-5 / 1e-5, with G pre-training)
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.99)
    pretrain_steps: int = 0  # generator-only steps before the GAN starts
    lr_schedule: str = "constant"  # constant | cosine (lr * (f + (1 - f)(1 + cos(pi step/iterations))/2))
    lr_final: float = 0.01  # f: the cosine schedule's last lr as a fraction of lr_g / lr_d
    ema: float = 0.0  # decay of a moving average of G's weights, validated and saved as generator.pt (0 = off)
    iterations: int = 40000
    # --- run -----------------------------------------------------------------------------------
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    # CUDA: deterministic kernels (cuDNN autotuning off, torch.use_deterministic_algorithms) so that a resumed
    # run is bit-identical to an uninterrupted one, as on the CPU; slower. Off: cuDNN picks the fastest kernels,
    # some of which reduce in a varying order (runs agree to rounding, not bits)
    deterministic: bool = False
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 1000
    sample_every: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)

    # --------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for f in fields(self):  # scalar fields: the right kind of value (e.g. --set width=abc), one clear line
            value, kinds = getattr(self, f.name), _SCALAR_KINDS.get(f.type)
            if kinds is None:
                continue
            types, words = kinds
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):  # bool is an int
                raise ValueError(f"config key {f.name!r} expects {words}, got {value!r}")
        if self.model == "agan" and self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {list(VARIANTS)}, got {self.variant!r}")
        if self.crop_size % 4:
            raise ValueError(f"crop_size must be divisible by 4, got {self.crop_size}")
        if self.width <= 0 or self.disc_width <= 0 or (self.arn_width is not None and self.arn_width <= 0):
            raise ValueError("width, arn_width and disc_width must be > 0")
        if self.derain_size < 0:
            raise ValueError(f"derain_size must be >= 0 (0 = full resolution), got {self.derain_size}")
        if self.derain_smooth < 0:
            raise ValueError(f"derain_smooth must be >= 0 (0 = off), got {self.derain_smooth}")
        if self.derain_blend not in ("none", "attention"):
            raise ValueError(f"derain_blend must be 'none' or 'attention', got {self.derain_blend!r}")
        if self.num_workers < -1:
            raise ValueError(f"num_workers must be >= 0, or -1 (auto), got {self.num_workers}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.mask_source not in ("difference", "drops"):
            raise ValueError(f"mask_source must be 'difference' or 'drops', got {self.mask_source!r}")
        if self.map_target not in ("attention", "mask"):
            raise ValueError(f"map_target must be 'attention' or 'mask', got {self.map_target!r}")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0 = off), got {self.ema!r}")
        if not 0.0 <= self.lr_final <= 1.0:
            raise ValueError(f"lr_final must be in [0, 1], got {self.lr_final!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto|fp32|bf16|fp16, got {self.precision!r}")
        if self.perceptual_weight < 0:
            raise ValueError(f"perceptual_weight must be >= 0 (0 = no L_P), got {self.perceptual_weight!r}")
        if len(self.lambdas) != 3:
            raise ValueError("lambdas needs three weights (S1, S2, O)")

    @property
    def attentive_generator(self) -> bool:
        return VARIANTS[self.variant][0]

    @property
    def discriminator(self) -> str | None:
        return VARIANTS[self.variant][1]

    # --------------------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Config:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        values = {**copy.deepcopy(PRESETS[name]), "name": name, **overrides}
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def override(self, items: list[str] | dict[str, Any]) -> Config:
        """Apply "key=value" strings (values parsed as JSON when possible) or a dict."""
        if isinstance(items, dict):
            pairs = items.items()
        else:
            pairs = []
            for item in items:
                if "=" not in item:
                    raise ValueError(f"override {item!r} is not of the form key=value")
                k, v = item.split("=", 1)
                try:
                    v = json.loads(v)
                except json.JSONDecodeError:
                    pass
                pairs.append((k.strip(), v))
        names = {f.name for f in fields(self)}
        changes = {}
        for k, v in pairs:
            if k not in names:
                raise ValueError(f"unknown config key {k!r}; known keys: {', '.join(sorted(names))}")
            changes[k] = tuple(v) if isinstance(v, list) else v
        return self.replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def save(self, path: str | os.PathLike) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(self.to_json() + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        with open(path) as f:
            return cls.from_dict(json.load(f))


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu": dict(
        # G: the autoencoder at 3/4 width (48/96/192 channels), its attentive-recurrent network at 1/4 (8
        # channels). At 1/2 width everywhere the ARN (N = 4 passes at full resolution) took 2/3 of G's time;
        # narrowing it paid for a wider autoencoder, which does the restoring, at the old step cost (0.18 s):
        # +2.08 / +2.06 dB val, +1.93 / +1.99 held out (seeds 0 / 1, 2 threads) vs +1.80 / +1.91, +1.71 / +1.79
        # at 1/2 width; 1/2 width with the 1/4 ARN and 23% more steps: +2.10 / +1.89, +2.03 / +1.80 (README)
        width=0.75,
        arn_width=0.25,
        steps=4,
        # D at 1/8 width (4, 4, 8, 16, 16, 16 channels): at 1/4 its three 32-channel 5x5 convs at full
        # resolution made D the costliest part of a step
        disc_width=0.125,
        disc_pool=4,
        crop_size=64,
        batch_size=4,
        # no L_P: the paper's VGG16 needs ImageNet weights, which cannot be downloaded offline, and its random-init
        # stand-in costs 18% of a step (bench_train: 0.226 vs 0.186 s). Spent on 20% more steps instead, the time
        # gained as much or more (held out: +2.00, +2.00, +1.71 dB in three runs vs +1.81, +1.73 with L_P), although
        # at *equal* steps the stand-in helped (+1.81 vs +1.60; README). --vgg-weights turns L_P on.
        perceptual_weight=0.0,
        vgg_weights="random",
        # 64-px crops of a 240-px-wide frame (a 720x480 shot at 1/3): the drops are drawn at the size they have
        # in a 720x480 photo reduced to 240 px, and agan derain runs G at that scale (derain_size), enlarging
        # only its change, so a real photo's drops look to G as in training and its finer detail stays the
        # input's. The crop shows 0.3-0.6 of the background photo (default 0.5-1.0: whole photos in 64 px)
        extra={"synth": {"frame_px": 240, "view": [0.3, 0.6]}},
        derain_size=240,
        # G's change smoothed (sigma 2 px at 240 = 6 px at 720, below the drops' defocus) and weighted by A_N: on
        # the real pairs and on synthetic 720x480 frames this kept SSIM at or above the input's (docs/real_photos.md)
        derain_smooth=2.0,
        derain_blend="attention",
        # M = the drawn drop layer: the synthesiser knows it exactly (the paper's |rain - clean| >= 30 stays the
        # rule for real pairs: mask_source applies to synthetic data only)
        mask_source="drops",
        lr_g=1e-3,
        # D at half G's rate: at 1e-3 the narrow D died (stuck at D = 1/2) in some runs, one of them with a
        # 3/8-width G; at 5e-4 it was alive at the end of the runs we made before this G, and of 5 of 6 seeds
        # of this one (seed 2's D idled throughout)
        lr_d=5e-4,
        lr_schedule="cosine",
        # ~13 min on our 2 cores, where precision "auto" trains under bf16 autocast (~6 steps/s: 764 s in make
        # reproduce, real-pairs validation included; bench_train 0.188 s/step); CPUs without native bf16 train in
        # fp32 (bench_train: 1.33x the bf16 step, so ~17 min)
        iterations=4600,
        val_size=64,  # 16 crops proved too few: their mean gain swung by +-0.4 dB between seeds
        log_every=25,
        # a validation point costs ~1.5 s (64 images) and does not change the training (same weights with
        # 250 or 500): every 500 steps keeps 10 points on the curve and ~14 s of the budget
        val_every=500,
        ckpt_every=250,
        sample_every=500,
    ),
}
