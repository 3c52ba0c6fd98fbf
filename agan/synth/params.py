"""The physical parameters of the raindrop renderer (``agan.synth.renderer``): the ranges they are drawn
from (:class:`SynthParams`), their validation, ``NAME=VALUE`` overrides, and the per-image draws.

Every ``(lo, hi)`` range is sampled once per image; the order of the draws is fixed
(:data:`IMAGE_DRAWS`), so fixing one parameter leaves the samples of the others unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from agan.config import split_key_values

__all__ = ["IMAGE_DRAWS", "Range", "SynthParams", "params_from_any", "replace", "sample_image_values"]

Range = tuple[float, float]


@dataclass
class SynthParams:
    """Physical parameters of the raindrop renderer.  Each ``(lo, hi)`` range is sampled uniformly
    once per image (``radius_mm`` per drop, from a power law); give ``(v, v)`` to fix a value.
    Defaults are tuned toward the real Raindrop train pairs (see ``agan.synth.calibrate``).

    coverage           expected fraction of the glass covered by drops (Boolean model, before merging)
    radius_mm          footprint radius a of a drop on the glass, mm
    size_exponent      k of p(a) ~ a^-k: many small drops, few large ones
    contact_angle_deg  tau, angle between glass and cap at the footprint edge (steeper = more TIR rim)
    merge_prob         probability that a drop has 1-3 merged satellites (irregular footprints)
    glass_mm           d_g, distance from the lens to the glass along the optical axis, mm
    tilt_deg           psi, tilt of the pane about the x axis (0 = upright window, ~35 = windshield)
    focal_mm           35 mm-equivalent focal length; field of view = 2 atan(18 / focal_mm)
    frame_px           width of the camera frame in px; the output is a crop of it (None = the output)
    f_number           35 mm-equivalent f-number N; aperture q = f / N; smaller = blurrier drops
    focus_m            focus distance S, m (the scene is sharp, the drops are not)
    scene_m            depth of the fronto-parallel scene plane that the background shows, m
    drop_gain          brightness gain of the light gathered by a drop
    tir_brightness     fraction of the background that a totally-internally-reflecting pixel shows
    drop_haze          light the water scatters inside a drop: D <- (1 - v) D + v * haze colour (real
                       drops are bright, translucent blobs: on the real pairs RGB inside M is
                       +40/+43/+50 above the clean shot)
    haze               veil of the wet glass over the whole image: I <- (1 - h) I + h * haze colour
    exposure           global gain of the rainy shot relative to the clean one (real pairs, away from
                       drops: 0.90-1.03, 3-9 levels darker)
    view               fraction of the background photo (its shorter side) that the output shows; the
                       crop is resized to the output size. Small crops of a large frame (the paper trains
                       on 224 crops of 720x480 shots) show ~0.3 of the scene, whole shots 1.0
    n_water, max_drops refractive index of water; safety cap on drops per image
    """

    coverage: Range = (0.15, 0.4)  # expected fraction of the glass covered by drops (Boolean model)
    radius_mm: Range = (0.8, 3.0)  # footprint radius a of one drop, mm
    size_exponent: float = 2.0  # p(a) ~ a^-k on radius_mm: many small drops, few large ones
    contact_angle_deg: Range = (25.0, 45.0)  # tau, angle between glass and cap at the footprint edge
    merge_prob: float = 0.3  # probability that a drop has 1-3 merged satellites (irregular footprint)
    glass_mm: Range = (25.0, 60.0)  # d_g, lens -> glass along the optical axis, mm (big, defocused drops)
    tilt_deg: Range = (0.0, 25.0)  # psi, pane tilt about the x axis (0 = upright window, ~35 = windshield)
    focal_mm: Range = (24.0, 40.0)  # 35 mm-equivalent focal length (fov = 2 atan(18 / f))
    frame_px: int | None = 720  # width of the full camera frame; the output is a crop of it (None = output)
    f_number: Range = (10.0, 24.0)  # 35 mm-equivalent f-number N (aperture q = f / N); smaller = blurrier
    focus_m: Range = (3.0, 15.0)  # focus distance S, m
    scene_m: Range = (4.0, 8.0)  # depth of the scene plane that B shows, m
    drop_gain: Range = (0.95, 1.2)  # brightness gain of the light a drop gathers (Hao et al.: ~1.2)
    tir_brightness: Range = (0.05, 0.25)  # TIR pixels show this fraction of the background behind them
    drop_haze: Range = (0.4, 0.8)  # scattered light inside drops: D <- (1 - v) D + v * haze colour
    haze: Range = (0.0, 0.02)  # veil of the wet glass: I <- (1 - h) I + h * haze colour
    exposure: Range = (0.92, 1.02)  # global gain of the rainy shot vs the clean one
    view: Range = (0.5, 1.0)  # fraction of the background photo in view (crop of it resized to the output)
    n_water: float = 1.333  # refractive index of water
    max_drops: int = 4000  # safety cap on the number of drops per image

    # bounds for validate(): name -> (min, max)
    _BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "coverage": (0.0, 0.95), "radius_mm": (0.05, 50.0), "contact_angle_deg": (1.0, 89.0),
        "glass_mm": (5.0, 5000.0), "tilt_deg": (0.0, 75.0), "focal_mm": (5.0, 600.0),
        "f_number": (0.5, 200.0), "focus_m": (0.1, 1e4), "scene_m": (0.1, 1e4),
        "drop_gain": (0.0, 5.0), "tir_brightness": (0.0, 1.0), "haze": (0.0, 0.9), "exposure": (0.1, 5.0),
        "drop_haze": (0.0, 1.0),
        "view": (0.01, 1.0),
    }

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                setattr(self, f.name, tuple(v))

    def validate(self) -> SynthParams:
        """Raise ValueError naming the first bad parameter; return self."""
        for name, (lo, hi) in self._BOUNDS.items():
            v = getattr(self, name)
            if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
                raise ValueError(f"synth parameter {name} must be a (lo, hi) pair of numbers, got {v!r}")
            if not all(math.isfinite(x) for x in v) or v[0] > v[1]:
                raise ValueError(f"synth parameter {name} must satisfy lo <= hi, got {v!r}")
            if v[0] < lo or v[1] > hi:
                raise ValueError(f"synth parameter {name}={v!r} is outside its physical range [{lo}, {hi}]")
        if not (0.0 <= self.merge_prob <= 1.0):
            raise ValueError(f"synth parameter merge_prob must be in [0, 1], got {self.merge_prob!r}")
        if not (0.0 <= self.size_exponent <= 10.0):
            raise ValueError(f"synth parameter size_exponent must be in [0, 10], got {self.size_exponent!r}")
        if not (1.0 < self.n_water < 3.0):
            raise ValueError(f"synth parameter n_water must be in (1, 3), got {self.n_water!r}")
        if self.frame_px is not None and not (isinstance(self.frame_px, int) and 8 <= self.frame_px <= 20000):
            raise ValueError(f"synth parameter frame_px must be an integer in [8, 20000] or None, "
                             f"got {self.frame_px!r}")
        if not (isinstance(self.max_drops, int) and self.max_drops >= 1):
            raise ValueError(f"synth parameter max_drops must be a positive integer, got {self.max_drops!r}")
        if self.scene_m[0] * 1000.0 <= self.glass_mm[1]:
            raise ValueError(f"synth parameter scene_m={self.scene_m!r} must lie beyond "
                             f"glass_mm={self.glass_mm!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthParams:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown synth parameter(s) {unknown}; known: {', '.join(sorted(names))}")
        return cls(**d).validate()

    def override(self, items: list[str] | dict[str, Any]) -> SynthParams:
        """``["coverage=0.1,0.3", "tilt_deg=30", "merge_prob=0"]`` -> new validated SynthParams.
        A single number for a range parameter fixes it (lo = hi)."""
        what = "synth parameter override"
        pairs = list(items.items()) if isinstance(items, dict) else [
            (k, _parse_value(v)) for k, v in split_key_values(items, what, "name=value")]
        current = self.to_dict()
        for k, v in pairs:
            if k not in current:
                raise ValueError(f"unknown synth parameter {k!r}; known: {', '.join(sorted(current))}")
            if isinstance(current[k], list) and isinstance(v, (int, float)):
                v = (v, v)
            current[k] = tuple(v) if isinstance(v, list) else v
        return SynthParams.from_dict(current)


def _parse_value(text: str) -> Any:
    """``"0.1,0.3"`` -> [0.1, 0.3], ``"30"`` -> 30, ``"none"`` -> None (JSON otherwise)."""
    text = text.strip()
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text if not ("," in text and not text.startswith("[")) else f"[{text}]")
    except json.JSONDecodeError:
        raise ValueError(f"cannot parse synth parameter value {text!r} (use a number or lo,hi)") from None


def params_from_any(params: SynthParams | dict | None) -> SynthParams:
    """None -> the defaults, a dict -> :meth:`SynthParams.from_dict`, SynthParams -> validated."""
    if params is None:
        return SynthParams()
    if isinstance(params, dict):
        return SynthParams.from_dict(params)
    return params.validate()


def replace(params: SynthParams, **changes: Any) -> SynthParams:
    """``dataclasses.replace`` + validation."""
    return dataclasses.replace(params, **changes).validate()


# ---------------------------------------------------------------------------------------------------
# per-image draws

# the range parameters drawn once per image, in the order of the draws (never reorder: same seed ->
# same bytes); radius_mm is drawn per drop and view by the background source
IMAGE_DRAWS = ("coverage", "contact_angle_deg", "glass_mm", "tilt_deg", "focal_mm", "f_number", "focus_m",
               "scene_m", "drop_gain", "tir_brightness", "haze", "exposure", "drop_haze")


def _u(rng: np.random.Generator, r: Range) -> float:
    """Uniform in [lo, hi]; always consumes one draw, so fixing one parameter leaves the others'
    samples unchanged (same seed -> same drops, only that parameter differs)."""
    u = float(rng.random())
    return float(r[0]) + (float(r[1]) - float(r[0])) * u


def sample_image_values(rng: np.random.Generator, p: SynthParams) -> dict[str, float]:
    """One value of every parameter in :data:`IMAGE_DRAWS` (13 draws of ``rng``), name -> float."""
    return {k: _u(rng, getattr(p, k)) for k in IMAGE_DRAWS}
