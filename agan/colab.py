"""Open a notebook of the kit on Google Colab. Each notebook's first code cell is

    import sys
    if "google.colab" in sys.modules:  # Colab only: find or clone the kit, install it, work from notebooks/
        from urllib.request import urlopen  # agan/colab.py, the kit's Colab helper
        exec(urlopen(RAW_URL).read())  # RAW_URL spelled out
        setup("02_attention_maps.ipynb")

 Nothing is installed before this file runs, so it imports only the
standard library.

``setup`` finds a checkout of the repository (the notebooks read ../runs, ../figures and the shipped
weights), in this order: the AGAN_DIR environment variable, the working folder or its parent,
/content/agan, a copy in Google Drive (MyDrive/*/ or MyDrive/*/*/ holding the notebook; README "Open a
notebook on Colab"), else a fresh clone of REPO_URL into /content/agan. It installs that checkout in editable
mode, so a student's edits in Drive are what runs, and changes the working folder to its notebooks/. Off Colab
it does nothing.
"""

from __future__ import annotations

import glob
import importlib
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["RAW_URL", "REPO_URL", "find_checkout", "setup"]

REPO_URL = "https://github.com/agan-kit/agan"  # the kit's repository (README "Open a notebook on Colab")
RAW_URL = "https://raw.githubusercontent.com/agan-kit/agan/main/agan/colab.py"  # this file, as cells read it


def _is_kit(path: str | Path) -> bool:
    p = Path(path)
    return (p / "pyproject.toml").is_file() and (p / "agan" / "__init__.py").is_file()


def find_checkout(notebook: str, places: list[str | Path] | None = None, drive: bool = True) -> Path | None:
    """The first folder holding the kit: AGAN_DIR, the working folder, its parent, /content/agan, then
    (``drive``) a Drive copy holding notebooks/``notebook``. None when there is none."""
    if places is None:
        places = [os.environ.get("AGAN_DIR", ""), Path.cwd(), Path.cwd().parent, "/content/agan"]
    root = next((Path(p) for p in places if p and _is_kit(p)), None)
    if root is not None or not drive:
        return root
    try:
        from google.colab import drive as gdrive  # only on Colab

        gdrive.mount("/content/drive")
        found = sorted(glob.glob(f"/content/drive/MyDrive/*/notebooks/{notebook}")
                       + glob.glob(f"/content/drive/MyDrive/*/*/notebooks/{notebook}"))
        return next((Path(f).parents[1] for f in found if _is_kit(Path(f).parents[1])), None)
    except Exception as e:  # Drive declined or unavailable: the caller clones instead
        print(f"Google Drive not used ({type(e).__name__}: {e})")
        return None


def setup(notebook: str) -> Path | None:
    """On Colab: find or clone the checkout, install it (editable) and work from its notebooks/ folder.
    Returns the checkout (None off Colab, where nothing is done)."""
    if "google.colab" not in sys.modules:
        return None
    root = find_checkout(notebook)
    if root is None:
        if subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, "/content/agan"]).returncode:
            raise RuntimeError(f"could not clone {REPO_URL}: put the repository in Google Drive (README, "
                               "'Open a notebook on Colab') or set AGAN_DIR to its folder")
        root = Path("/content/agan")
    # the checkout itself, editable, so that edits in a Drive copy are what runs. Colab already has torch,
    # matplotlib and ipywidgets; the notebooks extra would replace Colab's own Jupyter
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(root)], check=True)
    sys.path.insert(0, str(root))  # an editable install is seen by new kernels only: this one, now
    importlib.invalidate_caches()
    os.chdir(root / "notebooks")  # the notebooks' relative paths (../runs, ../figures) start here
    print(f"agan from {root}; working folder {root / 'notebooks'}")
    return root
