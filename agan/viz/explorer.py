"""The interactive explorer of notebook 08: plain callback functions (tested directly, usable without
widgets) and one function that wires them to ipywidgets.

Reference: Qian et al., CVPR 2018 -- the attention maps A_t of the attentive-recurrent network
(Sec. 4.1, Figs. 3/8), the raindrop mask M (|I - B| >= threshold in any channel; docs/paper.md#raindrop-mask)
and the image model I = (1 - M) B + R rendered by ``agan.synth.renderer``.

    state = explore("synthetic:0", model)          # run G once: I, A_1..A_N, O (+ B and M when known)
    state = explore("synthetic:0")                 # ... with the kit's default model (agan.infer.shipped)
    attention_at(state, t=2)                       # A_2 as an HxW array
    difference_mask_at(state.rain, state.clean, 30)   # M at a threshold, and its coverage
    res = synthesise(0, size=128, coverage=0.2, f_number=8)   # the synthesiser's drop parameters
    fig = render_view(state, t=4, threshold=30)
    build_explorer(model)                          # the widgets (a VBox) for a notebook
    build_explorer()                               # ... opened on the kit's default model

Your own photos (a whole photo derained, the upload button): ``agan.viz.photos``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DROP_PARAMETERS", "ExplorerState", "attention_at", "attention_mask_at", "build_explorer",
           "difference_mask_at", "explore", "list_examples", "load_example", "mask_iou", "render_view",
           "synthesise"]

# the synthesiser's parameters the explorer exposes: name -> (min, max, step, default, meaning)
DROP_PARAMETERS: dict[str, tuple[float, float, float, float, str]] = {
    "coverage": (0.02, 0.6, 0.02, 0.2, "fraction of the glass covered by drops"),
    "radius_mm": (0.3, 6.0, 0.1, 1.5, "drop footprint radius a (mm)"),
    "f_number": (2.0, 60.0, 1.0, 12.0, "f-number N: small = wide aperture = blurrier drops"),
    "glass_mm": (40.0, 400.0, 10.0, 120.0, "distance lens -> glass (mm)"),
    "tilt_deg": (0.0, 60.0, 1.0, 15.0, "tilt of the pane (degrees)"),
}


@dataclass
class ExplorerState:
    """One explored image: the input I, what G made of it and, when known, the clean image and masks."""

    name: str
    rain: np.ndarray  # (H, W, 3) uint8, the input I
    output: np.ndarray  # (H, W, 3) float32 in [0, 1], G's output O
    attention: list[np.ndarray] = field(default_factory=list)  # [A_1..A_N], (H, W) float32, unbounded
    clean: np.ndarray | None = None  # (H, W, 3) uint8, B (synthetic or paired real images)
    exact_mask: np.ndarray | None = None  # (H, W) bool, the synthesiser's drop footprints


# ----------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------
def list_examples(real_dir: str | os.PathLike | None = None, n_synthetic: int = 4) -> list[str]:
    """Names ``load_example`` accepts: "synthetic:0".."synthetic:{n-1}", then the images of ``real_dir``
    (recursively; e.g. ../shared/real) when it exists."""
    from agan.images import IMAGE_EXTENSIONS

    names = [f"synthetic:{i}" for i in range(n_synthetic)]
    if real_dir is not None and Path(real_dir).is_dir():
        files = sorted(p for p in Path(real_dir).rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                       and "clean" not in p.stem and p.parent.name not in ("clean", "gt"))
        names += [str(p) for p in files]
    return names


def _fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so that the longer side is at most ``max_side``, then crop to a multiple of 4."""
    from PIL import Image

    from agan.images import crop_to_multiple

    h, w = image.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        image = np.array(Image.fromarray(image).resize((max(4, round(w * s)), max(4, round(h * s))),
                                                          Image.Resampling.LANCZOS))
    return np.ascontiguousarray(crop_to_multiple(image, 4))


def load_example(name: str, size: int = 128, seed: int = 0, params: Any = None
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(rain, clean or None, exact mask or None)`` for a name of :func:`list_examples`.

    "synthetic:i" renders pair i of the synthetic set ``seed`` at ``size`` x ``size`` (``params``: a
    ``SynthParams``); a file path reads the photo, finds its clean partner (``N_rain`` -> ``N_clean`` in
    a sibling ``clean``/``gt`` folder) when there is one, and scales the longer side down to ``size``.
    """
    if name.startswith("synthetic:"):
        from agan.synth.renderer import make_pair

        try:
            index = int(name.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"example {name!r}: expected synthetic:<index>") from None
        res = make_pair(seed, index, size, params)
        return res.rain, res.clean, res.mask
    from agan.images import read_image

    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image (examples: synthetic:<i> or an image file)")
    rain = _fit(read_image(path), size)
    clean = None
    if path.stem.endswith("_rain"):
        stem = path.stem[: -len("_rain")] + "_clean"
        for folder in ("clean", "gt"):
            for partner in sorted((path.parent.parent / folder).glob(f"{stem}.*")):
                c = _fit(read_image(partner), size)
                if c.shape == rain.shape:
                    clean = c
                break
    return rain, clean, None


def synthesise(index: int = 0, size: int = 128, seed: int = 0, **drops: float):
    """Pair ``index`` of the synthetic set ``seed`` with some drop parameters fixed (names of
    ``DROP_PARAMETERS``; a single value fixes the synthesiser's range). Returns a ``SynthResult``.
    A value out of its physical range raises ValueError naming the parameter."""
    from agan.synth import SynthParams, make_pair

    unknown = sorted(set(drops) - set(DROP_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown drop parameter(s) {unknown}; the explorer exposes {list(DROP_PARAMETERS)}")
    params = SynthParams().override({k: float(v) for k, v in drops.items()})
    return make_pair(seed, index, size, params)


def _generator(model, device: Any = "auto"):
    """``model`` as (generator, its derain settings): a module as it is with the paper's settings (None), a
    path loaded (``agan.infer.load.load_generator``), None: the kit's default model
    (``agan.infer.shipped.default_weights()``; FileNotFoundError, one line, when not installed)."""
    if model is None:
        from agan.infer.shipped import announce_default, default_weights

        model = default_weights()
        announce_default(model)
    if isinstance(model, (str, os.PathLike)):
        from agan.infer.load import load_generator

        return load_generator(model, device)
    return tuple(model) if isinstance(model, tuple) else (model, None)  # load_generator's (G, settings), or G


def explore(name: str, model=None, size: int = 128, seed: int = 0, params: Any = None,
            device: str = "auto", settings=None) -> ExplorerState:
    """Load an example and run the generator ``model`` on it once (a Generator or a checkpoint path; None:
    the kit's default model) with ``settings`` (``agan.infer.settings``; None: the weights' own, the paper's
    for a module)."""
    from agan.infer.pipeline import derain

    rain, clean, exact = load_example(name, size, seed, params)
    output, maps = derain(rain.astype(np.float32) / 255.0, model=model, device=device, settings=settings)
    return ExplorerState(name, rain, np.asarray(output, np.float32),
                         [np.asarray(m, np.float32) for m in maps], clean, exact)


# ----------------------------------------------------------------------------------------------
# the callbacks: time step, masks
# ----------------------------------------------------------------------------------------------
def attention_at(state: ExplorerState, t: int) -> np.ndarray:
    """A_t (t = 1..N) as an (H, W) array; ValueError for a step out of range or a model without attention."""
    n = len(state.attention)
    if n == 0:
        raise ValueError("this model has no attention maps (ablation 'A' or a baseline)")
    if not 1 <= int(t) <= n:
        raise ValueError(f"time step t must be in 1..{n}, got {t}")
    return state.attention[int(t) - 1]


def difference_mask_at(rain: np.ndarray, clean: np.ndarray, threshold: int = 30, dilate: bool = False
                       ) -> tuple[np.ndarray, float]:
    """M at ``threshold`` (0..255: |rain - clean| >= threshold in any channel) -> (HxW bool, coverage);
    docs/paper.md#raindrop-mask."""
    from agan.images import difference_mask

    if clean is None:
        raise ValueError("no clean image for this example: the difference mask M needs a pair")
    if not 0 <= int(threshold) <= 255:
        raise ValueError(f"threshold must be in 0..255, got {threshold}")
    m = difference_mask(np.asarray(rain), np.asarray(clean), int(threshold), dilate)[0].numpy() > 0
    return m, float(m.mean())


def attention_mask_at(A: np.ndarray, level: float = 0.5) -> tuple[np.ndarray, float]:
    """Binarise an attention map: A_t >= level -> (HxW bool, coverage). Useful without a clean image."""
    m = np.asarray(A) >= float(level)
    return m, float(m.mean())


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def render_view(state: ExplorerState, t: int | None = None, threshold: int = 30, level: float = 0.5,
                ax_size: float = 2.6):
    """The explorer's picture: I, A_t, a mask (M at ``threshold`` with a clean image, else A_t >= ``level``),
    O and B when known. Titles carry the numbers (coverage, IoU of A_t >= level with M). Returns the
    Figure."""
    import matplotlib.pyplot as plt

    from agan.viz.plots import to_display

    panels: list[tuple[str, Any, str | None]] = [
        (f"input I ({state.name})"[:40], to_display(state.rain), None)]
    A = None
    if state.attention:
        t = len(state.attention) if t is None else t
        A = attention_at(state, t)
        panels.append((f"A_{t}", A, "jet"))
    if state.clean is not None:
        M, cov = difference_mask_at(state.rain, state.clean, threshold)
        title = f"M (>= {threshold}): {cov:.1%}"
        if A is not None:
            title += f", IoU(A_{t}>={level:g}) {mask_iou(attention_mask_at(A, level)[0], M):.2f}"
        panels.append((title, M.astype(np.float32), "gray"))
    elif A is not None:
        m, cov = attention_mask_at(A, level)
        panels.append((f"A_{t} >= {level:g}: {cov:.1%}", m.astype(np.float32), "gray"))
    panels.append(("output O", to_display(state.output), None))
    if state.clean is not None:
        panels.append(("clean B", to_display(state.clean), None))
    fig, axes = plt.subplots(1, len(panels), figsize=(ax_size * len(panels), ax_size), squeeze=False)
    vmax = max([1.0] + [float(a.max()) for a in state.attention])
    for ax, (title, data, cmap) in zip(axes[0], panels):
        if cmap == "jet":
            ax.imshow(data, cmap=cmap, vmin=0.0, vmax=vmax)
        elif cmap:
            ax.imshow(data, cmap=cmap, vmin=0.0, vmax=1.0)
        else:
            ax.imshow(data)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# the widgets
# ----------------------------------------------------------------------------------------------
def build_explorer(model=None, examples: list[str] | None = None, size: int = 128, seed: int = 0,
                   device: str = "auto", settings=None):
    """An ipywidgets VBox: pick an example, slide the time step t, the mask threshold and (for synthetic
    examples) the synthesiser's drop parameters. Every control calls the functions above. ``model``: a
    Generator or a checkpoint path; None (the default): the kit's default model. ``settings``
    (``agan.infer.settings``): how G's change is applied; None: the weights' own (a module: the paper's)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    model, saved = _generator(model, device)  # loaded once, not at every redraw
    settings = settings or saved
    examples = examples or list_examples()
    n_steps = max(1, getattr(model, "steps", 0) or 1)
    pick = W.Dropdown(options=examples, value=examples[0], description="image")
    step = W.IntSlider(value=n_steps, min=1, max=n_steps, description="time step t")
    threshold = W.IntSlider(value=30, min=0, max=255, description="M threshold")
    level = W.FloatSlider(value=0.5, min=0.0, max=1.5, step=0.05, description="A_t level")
    custom = W.Checkbox(value=False, description="use the drop parameters below (synthetic images)")
    drops = {name: W.FloatSlider(value=d, min=lo, max=hi, step=st, description=name, tooltip=meaning,
                                 style={"description_width": "initial"})
             for name, (lo, hi, st, d, meaning) in DROP_PARAMETERS.items()}
    out = W.Output()
    cache: dict[tuple, ExplorerState] = {}

    def state_for() -> ExplorerState:
        params = None
        if custom.value and pick.value.startswith("synthetic:"):
            from agan.synth import SynthParams

            params = SynthParams().override({k: float(w.value) for k, w in drops.items()})
        key = (pick.value, params.to_dict().__repr__() if params is not None else None)
        if key not in cache:
            cache.clear()  # keep one image: the generator re-runs only when the image changes
            cache[key] = explore(pick.value, model, size, seed, params, device, settings)
        return cache[key]

    def redraw(_=None) -> None:
        with out:
            out.clear_output(wait=True)
            try:
                fig = render_view(state_for(), step.value, threshold.value, level.value)
                display(fig)
                plt.close(fig)
            except (ValueError, FileNotFoundError) as e:
                print(f"error: {e}")

    for w in [pick, step, threshold, level, custom, *drops.values()]:
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([pick, step]), W.HBox([threshold, level]), custom,
                   W.HBox(list(drops.values())[:3]), W.HBox(list(drops.values())[3:]), out])
