"""A physically based raindrop renderer: drops on a glass pane in front of the lens, ray traced.

References (textbook optics, no code copied):
    J. Roser, A. Geiger, "Video-based raindrop detection for improved image registration", ICCV-W 2009.
    M. Halimeh, J. Roser, "Raindrop detection on car windshields using geometric-photometric
    environment construction and intensity-based correlation", IEEE IV 2009.
    Z. Hao et al., "Learning from synthetic photorealistic raindrop for single image raindrop removal",
    ICCV-W 2019.   F. Pizzati et al., "Model-based occlusion disentanglement", ECCV 2020.
    The synthesiser is the kit's addition, not the paper's: docs/paper.md#kit-additions.

Image model (paper Sec. 3, Eq. 1; docs/paper.md#image-model):
    I = blur(D * alpha) + B * (1 - blur(alpha)),  i.e. I = (1 - M) B + R.
    B      clean background, treated as a fronto-parallel scene plane at depth ``scene_m``
    alpha  exact (anti-aliased) coverage of the drop footprints on the glass, seen from the camera
           (``agan.synth.drops``)
    D      drop appearance: each drop pixel's ray is refracted by the flat glass/water interface
           and by the spherical cap, then hits the scene plane; the hit point projected through the
           camera is the pixel of B that the drop shows; past the critical angle the ray is totally
           internally reflected (TIR): the dark rim (``agan.synth.optics``)
    blur   thin-lens defocus: the camera focuses at ``focus_m`` while the drops sit ``glass_mm`` away,
           so the drop layer is convolved with a disk (circle of confusion), per row for a tilted pane
           (``agan.synth.camera``)

The parameters and their per-image draws live in ``agan.synth.params``. Everything is vectorised over
(pixel, drop) pairs; the only Python loop is over a handful of procedural shapes.  Same seed + same
parameters -> identical bytes: the random draws always come in the order of :func:`render`'s steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agan.synth.backgrounds import BackgroundSource, _default_source
from agan.synth.camera import PaneCamera, defocus_drop_layer, pane_camera
from agan.synth.drops import Drops, explicit_drops, footprint_boxes, rasterise, sample_drops
from agan.synth.optics import Trace, drop_appearance, haze_colour, trace_rays
from agan.synth.params import SynthParams, params_from_any, sample_image_values

__all__ = ["SynthResult", "make_pair", "render"]


@dataclass
class SynthResult:
    rain: np.ndarray  # (H, W, 3) uint8, the rendered rainy image I
    clean: np.ndarray  # (H, W, 3) uint8, the background B
    alpha: np.ndarray  # (H, W) float32, blur(alpha): the weight of the drop layer in I (soft coverage)
    mask: np.ndarray  # (H, W) bool, binary drop mask: ray-hit footprint test (footprint >= 0.5)
    diff_mask: np.ndarray  # (H, W) bool, the paper's M: |rain - clean| >= 30 in any channel
    params: dict[str, Any] = field(default_factory=dict)  # sampled values, JSON-serialisable
    footprint: np.ndarray | None = None  # (H, W) float32, sharp anti-aliased coverage (before defocus)


def render(clean: np.ndarray, seed: int | np.random.Generator, params: SynthParams | None = None,
           diff_threshold: int = 30, drops: np.ndarray | None = None) -> SynthResult:
    """Render raindrops on glass in front of the camera that sees ``clean`` (H, W, 3 uint8).

    ``seed`` (int or Generator) drives every random choice: same seed + params -> identical bytes.
    ``drops``: optional (K, 4) array of explicit drops (x_px, y_px, a_mm, tau_deg), centres in output
    pixel coordinates, instead of the random Boolean-model drops (for tests and teaching).
    """
    p = (params or SynthParams()).validate()
    clean = np.asarray(clean)
    if clean.ndim != 3 or clean.shape[2] != 3 or clean.dtype != np.uint8:
        raise ValueError(f"clean must be an (H, W, 3) uint8 image, got {clean.shape} {clean.dtype}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    H, W = clean.shape[:2]
    B = clean.astype(np.float32) / 255.0  # (H, W, 3)

    # 0. one draw per image of every physical range, then the camera, the pane and the canvas
    s = sample_image_values(rng, p)
    cam = pane_camera(rng, p, s, H, W)
    # 1. sample drops on the pane (Boolean model + merged satellites), or take the given ones
    d = sample_drops(rng, p, s["coverage"], cam) if drops is None else explicit_drops(drops, cam)
    # 2. drop shapes / footprints: sphere caps, their pixel coverage alpha (Hc * Wc,), the owned pixels
    fp = footprint_boxes(d, cam)
    alpha_c, hits = rasterise(d, fp, cam)
    # 3. refraction: the flipped, minified view each drop shows (Snell at the glass and at the cap)
    tr = trace_rays(cam, d, fp, hits, p.n_water)
    # 4. drop colour D (P, 3): refracted view, Fresnel, total internal reflection rim, scattered light
    haze_col = haze_colour(B)  # (3,)
    D = drop_appearance(B, tr, hits, cam, s, haze_col)
    # 5. defocus blur of the premultiplied drop layer: (H, W, 4) = (blur(D alpha), blur(alpha))
    blurred = defocus_drop_layer(alpha_c, D, hits.pix, cam)
    # 6. composite I = blur(D alpha) + B (1 - blur(alpha)), i.e. I = (1 - M) B + R (paper Eq. 1)
    image, ab = composite(blurred, B)  # (H, W, 3), (H, W, 1)
    # 7. glass haze and exposure, quantised to uint8
    rain = haze_and_exposure(image, s, haze_col)
    # 8. masks: the paper's M from |rain - clean|, the sharp footprint coverage
    diff = paper_mask(rain, clean, diff_threshold)
    footprint = alpha_c.reshape(cam.Hc, cam.Wc)[cam.m:cam.m + H, cam.m:cam.m + W].astype(np.float32)
    return SynthResult(rain=rain, clean=clean.copy(), alpha=ab[..., 0].astype(np.float32),
                       mask=footprint >= 0.5, diff_mask=diff, params=sampled_record(s, cam, d, tr),
                       footprint=footprint)


def composite(blurred: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paper Eq. 1 with a blurred alpha: I = blur(D alpha) + B (1 - blur(alpha)), (H, W, 3) float;
    also returns blur(alpha) clipped to [0, 1], (H, W, 1)."""
    ab = np.clip(blurred[..., 3:], 0.0, 1.0)
    return blurred[..., :3] + B * (1.0 - ab), ab


def haze_and_exposure(image: np.ndarray, s: dict[str, float], haze_col: np.ndarray) -> np.ndarray:
    """I <- exposure * ((1 - h) I + h * haze colour), the veil of the wet glass and the rainy shot's
    gain, then quantised: (H, W, 3) uint8."""
    gain = np.float32(255.0 * s["exposure"] * (1.0 - s["haze"]))
    offset = (255.0 * s["exposure"] * s["haze"] * haze_col + 0.5).astype(np.float32)
    return np.clip(image * gain + offset, 0, 255).astype(np.uint8)


def paper_mask(rain: np.ndarray, clean: np.ndarray, threshold: int) -> np.ndarray:
    """The paper's M (docs/paper.md#raindrop-mask): |rain - clean| >= threshold in any channel,
    (H, W) bool from two (H, W, 3) uint8 images."""
    ad = np.maximum(rain, clean) - np.minimum(rain, clean)  # |rain - clean| in uint8
    return np.maximum(np.maximum(ad[..., 0], ad[..., 1]), ad[..., 2]) >= threshold


def sampled_record(s: dict[str, float], cam: PaneCamera, d: Drops, tr: Trace) -> dict[str, Any]:
    """The sampled values of one render, JSON-serialisable (``SynthResult.params``)."""
    r_top, r_bot = cam.r_top, cam.r_bot
    sampled = {k: round(v_, 6) for k, v_ in s.items()}
    sampled.update(n_drops=int(d.n_main), n_satellites=d.n_satellites,
                   blur_radius_px=[round(r_top, 3), round(r_bot, 3)],
                   tir_fraction=round(float(tr.tir.mean()) if tr.tir.size else 0.0, 6),
                   crop_offset_px=[round(float(cam.ox), 3), round(float(cam.oy), 3)])
    return sampled


def make_pair(seed: int, index: int, size: int | tuple[int, int], params: SynthParams | None = None,
              source: BackgroundSource | None = None) -> SynthResult:
    """Pair ``index`` of the synthetic set ``seed``: a deterministic function of (seed, index).
    Shared by ``agan synth`` and ``agan.data.datasets.SyntheticRaindrops`` so files and on-the-fly
    data agree."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    source = source or _default_source()
    params = params_from_any(params)
    clean = source.sample(np.random.default_rng([seed, index, 0]), size, params.view)
    return render(clean, np.random.default_rng([seed, index, 1]), params)
