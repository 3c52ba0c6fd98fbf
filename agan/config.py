"""One typed config for every knob, with named presets, saved as JSON beside every run.

    cfg = Config.preset("cpu", iterations=300)       # preset + overrides
    cfg = cfg.override(["lr_g=1e-4", "variant=A"])   # CLI / papermill style "key=value" strings
    cfg.save("runs/x/config.json"); Config.load("runs/x/config.json")

Presets
    paper  the paper's constants (docs/paper.md#losses): full width, N = 4 steps, 224x224 crops, batch 2,
           ImageNet VGG16.
    cpu    the same topology, narrower and on small crops, so that a useful run fits in
           ~6-11 minutes on 2 CPU cores; without L_P (ImageNet VGG16 weights cannot be downloaded
           offline; the log says so), unless ``vgg_weights`` is given on the command line.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any

from agan.atomic import atomic_path

__all__ = ["Config", "OPTIMIZER_LRS", "PRESETS", "VARIANTS", "split_key_values"]

# the learning rates (G, D) an optimiser comes with: the paper gives no optimiser (docs/design.md); Adam's are
# the dataclass defaults, RMSprop's those of public re-implementations
OPTIMIZER_LRS: dict[str, dict[str, float]] = {"adam": {"lr_g": 5e-4, "lr_d": 5e-4},
                                              "rmsprop": {"lr_g": 2e-5, "lr_d": 1e-5}}

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



def split_key_values(items: list[str], what: str, form: str) -> list[tuple[str, str]]:
    """``["a=1", "b = x"]`` -> ``[("a", "1"), ("b", " x")]``; an item without "=" is one clear error line."""
    pairs = []
    for item in items:
        if "=" not in item:
            raise ValueError(f"{what} {item!r} is not of the form {form}")
        k, v = item.split("=", 1)
        pairs.append((k.strip(), v))
    return pairs


def _json_or_text(v: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v

@dataclass
class Config:
    name: str = "paper"
    # --- model -------------------------------------------------------------------------------
    model: str = "agan"  # agan | eigen13 | pix2pix
    variant: str = "AA+AD"  # A | A+D | A+AD | AA+AD (full); see VARIANTS
    width: float = 1.0  # generator channel multiplier (1.0 = paper, 6,244,362 parameters)
    arn_width: float | None = None  # the attentive-recurrent network's channel multiplier (None = width)
    steps: int = 4  # N, recurrent attention steps (paper Sec. 4.1, Eq. 3)
    disc_width: float = 1.0  # discriminator channel multiplier
    disc_pool: int = 14  # D's features pooled to pool x pool before FC (14 = identity at 224)
    # --- losses (paper Sec. 4) -----------------------------------------------------------------
    theta: float = 0.8  # theta, L_ATT's decay over the N steps (paper Eq. 4)
    lambdas: tuple[float, float, float] = (0.6, 0.8, 1.0)  # lambda_i, L_M weights for S1, S2, O (paper Eq. 5)
    gamma: float = 0.05  # gamma, weight of L_map in L_D (paper Eqs. 8-9)
    adv_weight: float = 0.01  # weight of log(1 - D(O)) in L_G (paper Eq. 7: 10^-2)
    map_target: str = "attention"  # D_map target for fakes: "attention" (A_N, paper) | "mask" (M)
    vgg_weights: str = "imagenet"  # "imagenet" | "random" (explicit, not the paper) | path to vgg16 .pth
    vgg_layers: tuple[str, ...] = ("relu1_1", "relu1_2", "relu2_1", "relu2_2")
    vgg_layer_weights: tuple[float, ...] | None = None  # None = all 1
    perceptual_weight: float = 1.0
    # weight of L_keep, an L1 distance between O and T on the pixels the drops left as they were (not in the
    # paper: agan.losses.KeepLoss; 0 = off, the paper's L_G)
    keep_weight: float = 0.0
    # --- data ----------------------------------------------------------------------------------
    data: str = "synthetic"  # "synthetic" (on the fly) | a folder in the Raindrop layout
    val_data: str = ""  # held-out folder; "" = synthetic validation split (different seed)
    crop_size: int = 224
    batch_size: int = 2
    flip: bool = True
    mask_threshold: int = 30  # M: |rain - clean| >= 30/255 in any channel (docs/paper.md#raindrop-mask)
    mask_dilate: bool = False  # optional 3x3 dilation of M
    # M for synthetic pairs: "difference" (the paper's rule for real data: |rain - clean| >= mask_threshold,
    # which also marks the glass's haze) | "drops" (the exact drop layer the synthesiser drew:
    # blur(alpha) >= 0.3)
    mask_source: str = "difference"
    # the longer image side (px) at which agan derain / derain() run G on a photo by default, saved with the
    # weights; 0 = full resolution. A model trained on drops drawn as in a frame_px-wide frame sees real drops
    # at that scale: O = I + up(G(down(I)) - down(I)) keeps the finer detail of the input
    # (agan.infer.pipeline)
    derain_size: int = 0
    # how agan derain applies G's change D = G(I) - I at that scale (both off = the paper's O, as G gives it):
    # derain_smooth  sigma (px at G's scale) of a Gaussian that smooths D first: defocused drops change an
    #                image smoothly, so D's finer part is G's reconstruction error (blur, noise), not drops
    # derain_blend   "attention": D weighted by clip(A_N, 0, 1), the attention map of paper Sec. 4.1, so that
    #                regions G did not find drops in stay as they were; "none": D everywhere
    derain_smooth: float = 0.0
    derain_blend: str = "none"
    val_size: int = 16
    # real rainy/clean pairs (a folder in any layout agan eval reads, any image size) scored at every
    # validation point at full resolution, as agan derain would derain them (derain_size), beside the
    # synthetic split and the rainy input's own score: a model is judged on real photos; "" = none; several
    # folders (a tuple) are scored and logged one by one (Config.real_val_dirs)
    real_val: str | tuple[str, ...] = ""
    # DataLoader worker processes for the training batches; -1 = auto: min(4, CPUs per GPU process - 1) on
    # CUDA, 0 on the CPU, where a worker gains next to nothing (docs/performance.md#gpu)
    num_workers: int = -1
    # --- optimisation (the paper gives none; docs/design.md) ------------------------------------
    optimizer: str = "adam"  # adam (5e-4, betas 0.5/0.99) | rmsprop (2e-5 / 1e-5, with G pre-training)
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.99)
    pretrain_steps: int = 0  # generator-only steps before the GAN starts
    lr_schedule: str = "constant"  # constant | cosine (lr * (f + (1 - f)(1 + cos(pi step/iterations))/2))
    lr_final: float = 0.01  # f: the cosine schedule's last lr as a fraction of lr_g / lr_d
    ema: float = 0.0  # moving average of G's weights, validated and saved as generator.pt (0 = off)
    iterations: int = 40000
    # --- run -----------------------------------------------------------------------------------
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    # CUDA: deterministic kernels (cuDNN autotuning off, torch.use_deterministic_algorithms) so that a resumed
    # run is bit-identical to an uninterrupted one, as on the CPU; slower. Off: cuDNN picks the fastest
    # kernels, some of which reduce in a varying order (runs agree to rounding, not bits)
    deterministic: bool = False
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 1000
    sample_every: int = 1000
    # --- synthetic drops (beyond the paper: agan.synth) -------------------------------------------
    # SynthParams fields to override, e.g. {"frame_px": 240}
    synth: dict[str, Any] = field(default_factory=dict)
    backgrounds: str = ""  # the synthesiser's clean images: "" = the bundled photos | a folder of images
    # do no harm: this fraction of the synthetic training pairs has no drop at all (rain = clean, M = 0), so
    # that G learns to return a drop-free photo as it is (docs/real_photos.md)
    clean_fraction: float = 0.0
    # --- baselines of Table 1 (agan.models.baselines) ---------------------------------------------
    l1_weight: float = 100.0  # Pix2Pix: L_G = L_GAN + l1_weight * L_L1 (lambda of Isola et al. Eq. 4)
    unet_depth: int = 0  # Pix2Pix U-Net depth; 0 = a 1x1 bottleneck on the training crop (8 at 224 / 256)
    pix2pix_norm: str = "instance"  # Pix2Pix normalisation: "instance" | "batch"

    # --------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for f in fields(self):  # scalar fields: the right kind of value (--set width=abc), one clear line
            value, kinds = getattr(self, f.name), _SCALAR_KINDS.get(f.type)
            if kinds is None:
                continue
            types, words = kinds
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):  # bool is int
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
        if self.keep_weight < 0:
            raise ValueError(f"keep_weight must be >= 0 (0 = no L_keep), got {self.keep_weight!r}")
        if self.perceptual_weight < 0:
            raise ValueError(f"perceptual_weight must be >= 0 (0 = no L_P), got {self.perceptual_weight!r}")
        if len(self.lambdas) != 3:
            raise ValueError("lambdas needs three weights (S1, S2, O)")
        if self.pix2pix_norm not in ("instance", "batch"):
            raise ValueError(f"pix2pix_norm must be 'instance' or 'batch', got {self.pix2pix_norm!r}")
        if not (isinstance(self.real_val, str) or all(isinstance(d, str) for d in self.real_val)):
            raise ValueError(f"real_val must be a folder or a list of folders, got {self.real_val!r}")
        names = [os.path.basename(os.path.normpath(d)) for d in self.real_val_dirs]  # logged by name
        if len(set(names)) < len(names):
            raise ValueError(f"real_val folders must have different names (each is logged by its name), got "
                             f"{self.real_val_dirs}")
        if not 0.0 <= self.clean_fraction < 1.0:
            raise ValueError(f"clean_fraction must be in [0, 1), got {self.clean_fraction!r}")
        if self.unet_depth < 0:
            raise ValueError(f"unet_depth must be >= 0 (0 = from the crop size), got {self.unet_depth}")

    @property
    def real_val_dirs(self) -> list[str]:
        """The folders of ``real_val``: "" -> [], "a" -> ["a"], ("a", "b") -> ["a", "b"]."""
        folders = [self.real_val] if isinstance(self.real_val, str) else list(self.real_val)
        return [d for d in folders if d]

    @property
    def attentive_generator(self) -> bool:
        return VARIANTS[self.variant][0]

    @property
    def discriminator(self) -> str | None:
        return VARIANTS[self.variant][1]

    # --------------------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Config:
        """The named preset, then ``overrides`` (through :meth:`replace`, so its rules apply)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        cfg = cls(**{**copy.deepcopy(PRESETS[name]), "name": name})
        return cfg.replace(**overrides) if overrides else cfg

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes``, after the config's rules (each one yields to a value set in the same
        call):
        1. a new ``optimizer`` brings its own learning rates (OPTIMIZER_LRS) and, for RMSprop, generator-only
           pre-training for the first 10% of ``iterations`` (where ``pretrain_steps`` is 0);
        2. choosing VGG features (``vgg_weights``) turns L_P on (``perceptual_weight`` 1) where it is off."""
        given = set(changes)
        if "optimizer" in given and changes["optimizer"] != self.optimizer:
            for key, value in OPTIMIZER_LRS.get(changes["optimizer"], {}).items():
                changes.setdefault(key, value)
            if (changes["optimizer"] == "rmsprop" and "pretrain_steps" not in given
                    and self.pretrain_steps == 0):
                changes["pretrain_steps"] = changes.get("iterations", self.iterations) // 10
        if "vgg_weights" in given and "perceptual_weight" not in given and self.perceptual_weight == 0:
            changes["perceptual_weight"] = 1.0
        return dataclasses.replace(self, **changes)

    def override(self, items: list[str] | dict[str, Any]) -> Config:
        """Apply "key=value" strings (values parsed as JSON when possible) or a dict."""
        pairs = items.items() if isinstance(items, dict) else [
            (k, _json_or_text(v)) for k, v in split_key_values(items, "override", "key=value")]
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
        """A config from its JSON form. Runs saved before the synthesiser's and the baselines' settings were
        fields kept them in one ``extra`` dict: its keys are read into those fields."""
        if "extra" in d:
            d = {**{k: v for k, v in d.items() if k != "extra"}, **(d["extra"] or {})}
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        with open(path) as f:
            return cls.from_dict(json.load(f))


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu": dict(
        # G: the autoencoder at 3/4 width (48/96/192 channels), its attentive-recurrent network at 1/4 (8
        # channels): the ARN's N passes at full resolution dominate G's cost, and the autoencoder does the
        # restoring (docs/design.md#config-and-presets; results per seed in docs/results.md)
        width=0.75,
        arn_width=0.25,
        steps=4,
        # D at 1/8 width (4, 4, 8, 16, 16, 16 channels): at 1/4 its three 32-channel 5x5 convs at full
        # resolution made D the costliest part of a step
        disc_width=0.125,
        disc_pool=4,
        crop_size=64,
        batch_size=4,
        # no L_P: the paper's VGG16 (Eq. 6) needs ImageNet weights, which cannot be downloaded offline, and
        # its random-init stand-in costs more than it gives at this budget; --vgg-weights turns L_P on
        # (docs/results.md#perceptual-loss-in-the-cpu-preset)
        perceptual_weight=0.0,
        vgg_weights="random",
        # 64-px crops of a 480-px-wide frame (a 720x480 shot at 2/3): the drops are drawn at the size they
        # have in a 720x480 photo reduced to 480 px, and agan derain runs G at that scale (derain_size),
        # enlarging only its change, so a real photo's drops look to G as in training and its finer detail
        # stays the input's; at 480 a 3-px drop of a 720-px photo is still 2 px. The crop shows 0.15-0.3 of
        # the background photo. Drops of every look, from wide ranges rather than the mean of four real pairs
        # (large hazy blobs and small sharp drops: drop_haze 0-0.8, radius 0.3-3 mm, glass 25-150 mm, f/10-40,
        # focus 0.3-15 m), and no global tone change between rain and clean (exposure 1, haze 0: real pairs
        # show none consistently) (docs/real_photos.md#6-judged-on-photos-nothing-was-tuned-on)
        synth={"frame_px": 480, "view": [0.15, 0.3], "exposure": [1, 1], "haze": [0, 0],
               "drop_haze": [0.0, 0.8], "radius_mm": [0.3, 3.0], "glass_mm": [25, 150], "f_number": [10, 40],
               "focus_m": [0.3, 15]},
        derain_size=480,
        # do no harm: a quarter of the training pairs have no drop (rain = clean), and L_keep, an L1 distance
        # on the pixels the drops left alone, stops G from darkening every pixel it is unsure of
        # (agan.losses.KeepLoss; not in the paper)
        clean_fraction=0.25,
        keep_weight=0.15,
        # G's change smoothed (sigma 2 px at 480 = 3 px at 720, below the drops' defocus) and weighted by A_N,
        # so that regions without drops stay as they were (docs/design.md#inference)
        derain_smooth=2.0,
        derain_blend="attention",
        # M = the drawn drop layer: the synthesiser knows it exactly (the paper's |rain - clean| >= 30 stays
        # the rule for real pairs: mask_source applies to synthetic data only)
        mask_source="drops",
        lr_g=1e-3,
        # D at half G's rate: at G's rate the narrow D can die (stuck at D = 1/2;
        # docs/results.md#the-discriminators-learning-rate)
        lr_d=5e-4,
        lr_schedule="cosine",
        # sized by the fp32 step, not the bf16 one: ~11 minutes on 2 cores of an AVX2-only CPU, ~6 where
        # the CPU has native bf16 (docs/performance.md#training-time-of-the-presets)
        iterations=2000,
        val_size=64,  # fewer crops give a noisy mean gain (docs/results.md#validation-size)
        log_every=25,
        # validation does not change the training; every 500 steps keeps 5 points on the curve
        val_every=500,
        ckpt_every=250,
        sample_every=500,
    ),
}
