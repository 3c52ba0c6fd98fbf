"""Sphinx configuration of the kit's book: the notebooks in paper order, then docs/, as one static site.

Built by ``book/build.py`` (``make book``), which first copies the pages into a staging folder (the executed
notebooks of ``make reproduce`` where present, else the stored ones; docs/ and the other Markdown pages with
their links rewritten for the site) and then runs ``sphinx-build -c book STAGING OUT``. Notebooks are never
executed here. The site needs no network to build or to read: MathJax 2 is copied from the pip package
``jupyter-server-mathjax`` into ``_static/mathjax/`` (nothing is loaded from a CDN), and the ipywidgets
loader, which myst-nb takes from a CDN, is turned off (executed copies show the widgets' text form).
"""

from __future__ import annotations

import shutil
from pathlib import Path

project = "agan"
author = "the agan kit"
copyright = "the agan kit (MIT)"
html_title = "agan: the book"

extensions = ["myst_nb", "sphinx.ext.mathjax"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# --- notebooks: rendered as stored (outputs included when they are executed copies), never run
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {}  # myst-nb's default loads require.js and the widget manager from a CDN

# --- Markdown: $...$ / $$...$$ math, GitHub-style heading anchors (docs link to paper.md#kit-additions etc.)
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 6
myst_update_mathjax = False  # myst would write a MathJax 3 config; the bundled MathJax is 2.7
suppress_warnings = ["mystnb.unknown_mime_type"]

# --- math, offline: MathJax 2.7 from jupyter-server-mathjax, copied into _static/mathjax at build time
MATHJAX_DIR = "mathjax"
mathjax_path = f"{MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax3_config = None
mathjax4_config = None
mathjax2_config = {
    # Sphinx writes inline math as \(...\) and display math as \[...\] inside .math elements
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processEscapes": True},
    "HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "webFont": "STIX-Web",
                 "imageFont": None},
    # the combined config draws a quick preview of every formula, then typesets it again: one pass only
    "fast-preview": {"disabled": True},
    "showProcessingMessages": False,
    "messageStyle": "none",
}

# --- the site: alabaster (Sphinx's default theme), navigation in the sidebar, previous/next, search
html_theme = "alabaster"
html_theme_options = {
    "description": "Attentive GAN for raindrop removal (Qian et al., CVPR 2018): an open kit",
    "page_width": "1240px",
    "sidebar_width": "260px",
    "fixed_sidebar": True,
    "show_relbars": True,
    "show_powered_by": False,
}
html_sidebars = {"**": ["about.html", "searchbox.html", "navigation.html", "relations.html"]}
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None


def mathjax_source() -> Path:
    """The MathJax 2.7 tree bundled by jupyter-server-mathjax (MathJax.js, config/, jax/, fonts/...)."""
    try:
        import jupyter_server_mathjax
    except ImportError as e:
        raise RuntimeError("the book renders math with the MathJax of jupyter-server-mathjax: "
                           "pip install -e '.[book]'") from e
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").is_file():
        raise RuntimeError(f"{static}: no MathJax.js in jupyter-server-mathjax")
    return static


def _copy_mathjax(app) -> None:
    if app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / MATHJAX_DIR
    if not (dest / "MathJax.js").is_file():  # ~12 MB, copied once per output folder
        shutil.copytree(mathjax_source(), dest, dirs_exist_ok=True)


def setup(app):
    # before any page is written, so that the script's path exists when Sphinx links it
    app.connect("builder-inited", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
