"""Your own photos in notebooks 00 and 08: find them, derain each whole as ``agan derain`` does, say what the
model did, and an upload button that does it inside a notebook. The view is the explorer's
(``agan.viz.explorer.render_view``: I, A_N, A_N >= level, O, and B when a clean partner is known).

Reference: Qian et al., CVPR 2018 -- the attention maps A_t of the attentive-recurrent network (Sec. 4.1,
Figs. 3/8) and the authors' evaluation protocol (docs/paper.md#evaluation-protocol) for photos with a clean
partner.

    find_photos("my_photos/")                      # [(photo, its clean partner or None)] of a file or folder
    state = derain_photo("rainy.jpg")              # a whole photo derained as `agan derain` does it
    print(photo_summary(state))                    # one line: size, A_N coverage, change, scores with B
    build_upload(model)                            # an upload button: derain your own photo in the notebook
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from agan.viz.explorer import ExplorerState, _generator, attention_mask_at, render_view

__all__ = ["build_upload", "derain_photo", "find_photos", "photo_summary", "read_upload"]


def find_photos(path: str | os.PathLike) -> list[tuple[Path, Path | None]]:
    """The photos of ``path`` as ``[(photo, its clean partner or None)]``: one image file; or a folder.

    A folder laid out like the Raindrop dataset (``data/`` + ``gt/``, or ``rain/`` + ``clean/``, ... of
    ``agan.data.layout.PAIR_LAYOUTS``, directly or in split folders such as ``test_a/``) gives its rainy
    photos with their clean partners, paired by id; a folder with only a ``data/``, ``rain/`` or ``input/``
    sub-folder gives that sub-folder's images; any other folder its own images. FileNotFoundError (one
    line) when there is no such file or folder or no image in it."""
    from agan.data.layout import find_splits, pair_by_id
    from agan.images import IMAGE_EXTENSIONS, list_images

    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise FileNotFoundError(f"{p}: not an image file (expected {', '.join(IMAGE_EXTENSIONS)})")
        return [(p, None)]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or folder")
    try:
        splits = find_splits(p)
    except FileNotFoundError:  # no paired sub-folders: the photos alone
        splits = []
    if splits:
        return [(a, b) for _, rain_dir, clean_dir in splits
                for _, a, b in pair_by_id(rain_dir, clean_dir, "rainy photo", "clean photo")]
    folder = next((p / sub for sub in ("data", "rain", "input") if (p / sub).is_dir()), p)
    photos = [(f, None) for f in list_images(folder)]
    if not photos:
        raise FileNotFoundError(f"{folder}: no images in it (expected {', '.join(IMAGE_EXTENSIONS)})")
    return photos


def read_upload(value: Any) -> list[tuple[str, bytes]]:
    """The files of an ``ipywidgets.FileUpload``'s ``value`` as ``[(name, content)]``: ipywidgets 8 gives a
    tuple of dicts (``name``, ``content``), ipywidgets 7 a dict name -> {``content``, ...}."""
    if not value:
        return []
    if isinstance(value, dict):  # ipywidgets 7
        return [(str(name), bytes(f["content"])) for name, f in value.items()]
    return [(str(f["name"]), bytes(f["content"])) for f in value]


def _image_from_bytes(name: str, content: bytes) -> np.ndarray:
    """An uploaded file's bytes -> HxWx3 uint8 RGB, read like a file (``agan.images.read_image``)."""
    import tempfile

    from agan.images import read_image

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / ("upload" + Path(name).suffix.lower())
        f.write_bytes(content)
        return read_image(f)


def derain_photo(photo: Any, model=None, device: str = "auto", settings=None, clean: Any = None,
                 name: str | None = None) -> ExplorerState:
    """Derain one whole photo as ``agan derain`` does (at its full resolution; the model's own settings
    decide the scale G runs at) -> an ``ExplorerState`` for ``agan.viz.explorer.render_view``.

    ``photo`` / ``clean``: an image file, an HxWx3 uint8 array, or ``(name, bytes)`` as :func:`read_upload`
    gives it; ``clean`` (optional) must have the photo's size. ``model``: a Generator, a checkpoint path,
    ``load_generator``'s (G, settings), or None: the kit's default model."""
    from agan.images import read_image
    from agan.infer.pipeline import derain

    def as_array(x: Any) -> tuple[np.ndarray, str]:
        if isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], (bytes, bytearray, memoryview)):
            return _image_from_bytes(x[0], bytes(x[1])), str(x[0])
        if isinstance(x, (str, os.PathLike)):
            return read_image(x), Path(x).name
        a = np.asarray(x)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 image, got {a.dtype} {a.shape}")
        return a, "photo"

    rain, label = as_array(photo)
    B = None
    if clean is not None:
        B = as_array(clean)[0]
        if B.shape != rain.shape:
            raise ValueError(f"clean photo {B.shape[1]}x{B.shape[0]} differs in size from the rainy photo "
                             f"{rain.shape[1]}x{rain.shape[0]}")
    G, saved = _generator(model, device)
    output, maps = derain(rain.astype(np.float32) / 255.0, model=G, device=device, settings=settings or saved)
    return ExplorerState(name or label, rain, np.asarray(output, np.float32),
                         [np.asarray(m, np.float32) for m in maps], B, None)


def photo_summary(state: ExplorerState, level: float = 0.5) -> str:
    """One line of what the model did to a photo: its size, the share of A_N >= ``level``, the share of
    pixels it changed by at least 5 grey levels (in any channel), the mean change, and with a clean image
    the PSNR / SSIM of input and output (``agan.evaluation.protocol.score_pair``)."""
    H, W = state.rain.shape[:2]
    change = np.abs(np.rint(state.output * 255.0) - state.rain.astype(np.float32)).max(axis=-1)  # (H, W)
    parts = [f"{state.name} ({W}x{H})"]
    if state.attention:
        parts.append(f"A_N >= {level:g} on {attention_mask_at(state.attention[-1], level)[1]:.1%}")
    parts.append(f"changed by >= 5 grey levels on {(change >= 5).mean():.1%} of the pixels, "
                 f"by {change.mean():.2f} on average")
    if state.clean is not None:
        from agan.evaluation.protocol import score_pair

        out8 = np.rint(np.clip(state.output, 0, 1) * 255).astype(np.uint8)
        (p_in, s_in), (p_out, s_out) = score_pair(state.rain, state.clean), score_pair(out8, state.clean)
        parts.append(f"input {p_in:.2f} dB / {s_in:.4f} -> output {p_out:.2f} dB / {s_out:.4f} "
                     f"({p_out - p_in:+.2f} dB)")
    return "; ".join(parts)


def build_upload(model=None, device: str = "auto", settings=None, level: float = 0.5):
    """An ipywidgets VBox to derain one's own photo: an upload button (``ipywidgets.FileUpload``, images
    only) and the view of ``agan.viz.explorer.render_view`` for each uploaded photo (the input, A_N,
    A_N >= ``level``, the output), derained whole by :func:`derain_photo`. ``model`` / ``settings`` as for
    ``agan.viz.explorer.build_explorer``. Nothing runs until a file is uploaded (a notebook run without a
    browser only shows the button)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    model, saved = _generator(model, device)  # loaded once, not at every upload
    settings = settings or saved
    upload = W.FileUpload(accept="image/*", multiple=True, description="your photo")
    out = W.Output()

    def show(change=None) -> None:
        files = read_upload(upload.value)
        if not files:
            return
        with out:
            out.clear_output(wait=True)
            for name, content in files:
                try:
                    state = derain_photo((name, content), model, device, settings)
                    fig = render_view(state, level=level, ax_size=3.2)
                    display(fig)
                    plt.close(fig)
                    print(photo_summary(state, level))
                except (ValueError, FileNotFoundError) as e:
                    print(f"error: {e}")

    upload.observe(show, names="value")
    note = W.HTML("Upload a photo taken through wet glass (JPEG, PNG, ...): it is derained whole with the "
                  "model above and shown beside its last attention map A_N.")
    return W.VBox([note, upload, out])
