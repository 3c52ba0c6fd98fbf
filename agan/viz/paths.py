"""Where the repository's folders are, from wherever code runs: notebooks from notebooks/, scripts from the
root, Colab from /content. Only the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

__all__ = ["ProjectPaths", "project_paths"]


class ProjectPaths(NamedTuple):
    root: Path  # the repository root (or the working folder on Colab)
    figures: Path  # root/figures
    runs: Path  # root/runs
    data: Path  # root/data
    real: Path | None  # root/../shared/real when present (never bundled), else None


def project_paths(start: str | os.PathLike | None = None) -> ProjectPaths:
    """Find the project root from ``start`` (default: the working folder) by walking up to the folder
    holding ``pyproject.toml`` + ``agan/``; falls back to ``start`` itself (e.g. on Colab)."""
    here = Path(start or Path.cwd()).resolve()
    is_root = lambda p: (p / "pyproject.toml").is_file() and (p / "agan").is_dir()  # noqa: E731
    root = next((p for p in (here, *here.parents) if is_root(p)), here)
    real = root.parent / "shared" / "real"
    return ProjectPaths(root, root / "figures", root / "runs", root / "data", real if real.is_dir() else None)
