"""One typed config for every knob, with named presets, saved as JSON beside every run.

    cfg = Config.preset("cpu", iterations=300)       # preset + overrides (+ what they imply: implied_by)
    cfg = cfg.override(["lr_g=1e-4", "variant=A"])   # CLI / papermill style "key=value" strings
    cfg.replace(lr_g=1e-4)                           # dataclasses.replace: nothing else changes
    cfg.save("runs/x/config.json"); Config.load("runs/x/config.json")

A config saved by an older kit (old keys) is read by ``agan.checkpoint.config_from_saved``, which migrates it.

Presets (docs/design.md#config-and-presets)
    paper  the paper's constants (docs/paper.md#losses): full width, N = 4 steps, 224x224 crops, batch 2,
           ImageNet VGG16.
    cpu    the same topology, narrower and on small crops, for a run of minutes on 2 CPU cores; without L_P
           (ImageNet VGG16 weights cannot be downloaded offline) unless ``vgg_weights`` is chosen.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args, get_origin, get_type_hints

from agan.atomic import atomic_path

__all__ = ["Config", "OPTIMIZER_LRS", "PRESETS", "VARIANTS", "implied_by", "split_key_values"]

# the learning rates (G, D) an optimiser comes with: the paper gives no optimiser (docs/design.md); Adam's are
# the dataclass defaults, RMSprop's those of public re-implementations
OPTIMIZER_LRS: dict[str, dict[str, float]] = {"adam": {"lr_g": 5e-4, "lr_d": 5e-4},
                                              "rmsprop": {"lr_g": 2e-5, "lr_d": 1e-5}}

# the scalar field types a value is checked against: (accepted Python types, words for the error message)
_SCALAR_KINDS: dict[Any, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"),
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    float | None: ((int, float, type(None)), "a number or null"),
    str: ((str,), "a string"),
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


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class Config:
    name: str = "paper"
    # --- model -------------------------------------------------------------------------------
    model: str = "agan"  # agan | eigen13 | pix2pix
    variant: str = "AA+AD"  # A | A+D | A+AD | AA+AD (full); see VARIANTS
    width: float = 1.0  # generator channel multiplier (1.0 = paper)
    arn_width: float | None = None  # the attentive-recurrent network's channel multiplier (None = width)
    steps: int = 4  # N, recurrent attention steps (paper Sec. 4.1, Eq. 3)
    disc_width: float = 1.0  # discriminator channel multiplier
    disc_pool: int = 14  # D's features pooled to pool x pool before FC (14 = identity at 224)
    # --- losses (paper Sec. 4) -----------------------------------------------------------------
    theta: float = 0.8  # theta, L_ATT's decay over the N steps (paper Eq. 4)
    lambdas: tuple[float, float, float] = (0.6, 0.8, 1.0)  # lambda_i, L_M weights for S1, S2, O (paper Eq. 5)
    gamma: float = 0.05  # gamma, weight of L_map in L_D (paper Eqs. 8-9)
    adv_weight: float = 0.01  # weight of log(1 - D(O)) in L_G (paper Eq. 7: 10^-2)
    map_target: Literal["attention", "mask"] = "attention"  # D_map's target for fakes: A_N (paper) | M
    vgg_weights: str = "imagenet"  # "imagenet" | "random" (explicit, not the paper) | path to vgg16 .pth
    vgg_layers: tuple[str, ...] = ("relu1_1", "relu1_2", "relu2_1", "relu2_2")
    vgg_layer_weights: tuple[float, ...] | None = None  # None = all 1
    perceptual_weight: float = 1.0  # weight of L_P (paper Eq. 6); 0 = off, no VGG is built
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
    # M for synthetic pairs: "difference" (the paper's rule for real data, which also marks the glass's haze)
    # | "drops" (the exact drop layer the synthesiser drew: blur(alpha) >= 0.3)
    mask_source: Literal["difference", "drops"] = "difference"
    # the longer image side (px) at which agan derain runs G on a photo, saved with the weights; 0 = full
    # resolution. G trained on drops drawn in a frame_px-wide frame sees real drops at that scale, and
    # O = I + up(G(down(I)) - down(I)) keeps the finer detail of the input (agan.infer.pipeline)
    derain_size: int = 0
    # how agan derain applies G's change D = G(I) - I at that scale (both off = the paper's O, as G gives it):
    # derain_smooth  sigma (px at G's scale) of a Gaussian that smooths D first: defocused drops change an
    #                image smoothly, so D's finer part is G's reconstruction error (blur, noise), not drops
    # derain_blend   "attention": D weighted by clip(A_N, 0, 1), the attention map of paper Sec. 4.1, so that
    #                regions G did not find drops in stay as they were; "none": D everywhere
    derain_smooth: float = 0.0
    derain_blend: Literal["none", "attention"] = "none"
    val_size: int = 16
    # real rainy/clean pairs (a folder in any layout agan eval reads) scored at every validation point as
    # agan derain would derain them, beside the synthetic split: a model is judged on real photos; "" = none;
    # several folders (a tuple) are scored and logged one by one (Config.real_val_dirs)
    real_val: str | tuple[str, ...] = ""
    # DataLoader worker processes for the training batches; -1 = auto: min(4, CPUs per GPU process - 1) on
    # CUDA, 0 on the CPU, where a worker gains next to nothing (docs/performance.md#gpu)
    num_workers: int = -1
    # --- optimisation (the paper gives none; docs/design.md) ------------------------------------
    # adam (betas below) | rmsprop; choosing one by name (Config.preset, agan train --optimizer) also brings
    # its learning rates and, for rmsprop, G pre-training (implied_by)
    optimizer: Literal["adam", "rmsprop"] = "adam"
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.99)
    pretrain_steps: int = 0  # generator-only steps before the GAN starts
    # constant | cosine: lr * (f + (1 - f)(1 + cos(pi step/iterations))/2), f = lr_final
    lr_schedule: Literal["constant", "cosine"] = "constant"
    lr_final: float = 0.01  # f: the cosine schedule's last lr as a fraction of lr_g / lr_d
    ema: float = 0.0  # moving average of G's weights, validated and saved as generator.pt (0 = off)
    iterations: int = 40000
    # --- run -----------------------------------------------------------------------------------
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: agan.precision
    # CUDA: deterministic kernels (torch.use_deterministic_algorithms), so that a resumed run is bit-identical
    # to an uninterrupted one, as on the CPU; slower. Off: some of the fastest kernels reduce in varying order
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
    pix2pix_norm: Literal["instance", "batch"] = "instance"  # Pix2Pix normalisation

    def __post_init__(self) -> None:
        """Every field the right kind of value (its type: a choice, a number, ...), then the ranges; a wrong
        value is one clear line naming the field (``--set width=abc``)."""
        for name, hint in _field_types().items():
            value = getattr(self, name)
            if get_origin(hint) is Literal:
                allowed = get_args(hint)
                _require(value in allowed, f"{name} must be one of {' | '.join(allowed)}, got {value!r}")
            elif hint in _SCALAR_KINDS:
                types, words = _SCALAR_KINDS[hint]
                ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))  # bool: int
                _require(ok, f"config key {name!r} expects {words}, got {value!r}")
        _require(self.model != "agan" or self.variant in VARIANTS,
                 f"variant must be one of {' | '.join(VARIANTS)}, got {self.variant!r}")
        _require(self.crop_size % 4 == 0, f"crop_size must be divisible by 4, got {self.crop_size}")
        _require(self.width > 0 and self.disc_width > 0 and (self.arn_width is None or self.arn_width > 0),
                 "width, arn_width and disc_width must be > 0")
        _require(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        _require(len(self.lambdas) == 3, "lambdas needs three weights (S1, S2, O)")
        for name, what in (("keep_weight", "no L_keep"), ("perceptual_weight", "no L_P"),
                           ("derain_size", "full resolution"), ("derain_smooth", "off"),
                           ("unet_depth", "from the crop size")):
            value = getattr(self, name)
            _require(value >= 0, f"{name} must be >= 0 (0 = {what}), got {value!r}")
        _require(self.num_workers >= -1, f"num_workers must be >= 0, or -1 (auto), got {self.num_workers}")
        _require(0.0 <= self.ema < 1.0, f"ema must be in [0, 1) (0 = off), got {self.ema!r}")
        _require(0.0 <= self.lr_final <= 1.0, f"lr_final must be in [0, 1], got {self.lr_final!r}")
        _require(0.0 <= self.clean_fraction < 1.0,
                 f"clean_fraction must be in [0, 1), got {self.clean_fraction!r}")
        _require(isinstance(self.real_val, str) or all(isinstance(d, str) for d in self.real_val),
                 f"real_val must be a folder or a list of folders, got {self.real_val!r}")
        names = [os.path.basename(os.path.normpath(d)) for d in self.real_val_dirs]  # each is logged by name
        _require(len(set(names)) == len(names), "real_val folders must have different names (each is logged "
                 f"by its name), got {self.real_val_dirs}")

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

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Config:
        """The named preset, then ``overrides`` with what they imply (:func:`implied_by`: a chosen
        optimiser's learning rates, L_P on for chosen VGG weights) where they do not set it themselves."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        cfg = cls(**{**copy.deepcopy(PRESETS[name]), "name": name})
        implied = {k: v for fields_ in implied_by(cfg, overrides).values() for k, v in fields_.items()}
        return dataclasses.replace(cfg, **overrides, **implied) if overrides else cfg

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` and nothing else changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def parse_overrides(cls, items: list[str] | dict[str, Any]) -> dict[str, Any]:
        """"key=value" strings (values parsed as JSON when possible) or a dict -> changes for :meth:`replace`;
        an unknown key is one clear error line."""
        pairs = items.items() if isinstance(items, dict) else [
            (k, _json_or_text(v)) for k, v in split_key_values(items, "override", "key=value")]
        names = {f.name for f in fields(cls)}
        changes = {}
        for k, v in pairs:
            if k not in names:
                raise ValueError(f"unknown config key {k!r}; known keys: {', '.join(sorted(names))}")
            changes[k] = tuple(v) if isinstance(v, list) else v
        return changes

    def override(self, items: list[str] | dict[str, Any]) -> Config:
        """Apply "key=value" strings or a dict (:meth:`parse_overrides`), as :meth:`replace` does."""
        return dataclasses.replace(self, **self.parse_overrides(items))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """A config from its JSON form, current keys only."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown config keys: {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        with open(path) as f:
            return cls.from_dict(json.load(f))


@functools.cache
def _field_types() -> dict[str, Any]:
    """Config's field types, evaluated (the annotations are strings: ``from __future__``)."""
    return get_type_hints(Config)


def implied_by(cfg: Config, changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields that ``changes`` to ``cfg`` imply, by the key that implies them, where ``changes`` does not
    set them itself; applied where a user chooses by name (Config.preset's overrides, agan train's flags):
    1. a new ``optimizer`` brings its own learning rates (OPTIMIZER_LRS) and, for RMSprop, generator-only
       pre-training for the first 10% of ``iterations`` (where ``pretrain_steps`` is 0);
    2. choosing VGG features (``vgg_weights``) turns L_P on (``perceptual_weight`` 1) where it is off."""
    implied: dict[str, dict[str, Any]] = {}
    optimizer = changes.get("optimizer", cfg.optimizer)
    if optimizer != cfg.optimizer:
        implied["optimizer"] = dict(OPTIMIZER_LRS.get(optimizer, {}))
        if optimizer == "rmsprop" and cfg.pretrain_steps == 0:
            implied["optimizer"]["pretrain_steps"] = changes.get("iterations", cfg.iterations) // 10
    if "vgg_weights" in changes and cfg.perceptual_weight == 0:
        implied["vgg_weights"] = {"perceptual_weight": 1.0}
    implied = {key: {k: v for k, v in brings.items() if k not in changes} for key, brings in implied.items()}
    return {key: brings for key, brings in implied.items() if brings}


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu": dict(
        # G: the autoencoder, which does the restoring, at 3/4 width (48/96/192 channels); its attentive-
        # recurrent network at 1/4 (8 channels): its N passes at full resolution dominate G's cost
        width=0.75,
        arn_width=0.25,
        steps=4,
        # D at 1/8 width (4, 4, 8, 16, 16, 16 channels): its 5x5 convs at full resolution cost most at 1/4
        disc_width=0.125,
        disc_pool=4,
        crop_size=64,
        batch_size=4,
        # no L_P: the paper's VGG16 (Eq. 6) needs ImageNet weights, which cannot be downloaded offline, and
        # its random-init stand-in costs more than it gives at this budget; --vgg-weights turns L_P on
        perceptual_weight=0.0,
        vgg_weights="random",
        # 64-px crops of a 480-px-wide frame (a 720x480 shot at 2/3), the scale agan derain runs G at
        # (derain_size), so a real photo's drops look to G as in training; drops of every look, from wide
        # ranges, and no global tone change between rain and clean: real pairs show none consistently
        # (docs/real_photos.md#6-judged-on-photos-nothing-was-tuned-on)
        synth={"frame_px": 480, "view": [0.15, 0.3], "exposure": [1, 1], "haze": [0, 0],
               "drop_haze": [0.0, 0.8], "radius_mm": [0.3, 3.0], "glass_mm": [25, 150], "f_number": [10, 40],
               "focus_m": [0.3, 15]},
        derain_size=480,
        # do no harm (not in the paper): a quarter of the pairs have no drop, and L_keep
        # (agan.losses.KeepLoss) stops G from darkening every pixel it is unsure of
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
        lr_d=5e-4,  # D at half G's rate: at G's rate the narrow D can die (stuck at D = 1/2)
        lr_schedule="cosine",
        iterations=2000,  # sized by the fp32 step of a CPU without native bf16
        val_size=64,  # fewer crops give a noisy mean gain
        log_every=25,
        val_every=500,  # validation does not change the training; 5 points on the curve
        ckpt_every=250,
        sample_every=500,
    ),
}
