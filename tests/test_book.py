"""The book (book/build.py, `make book`): built from the stored notebooks into a temporary folder, then read
as files (navigation order, internal links, search index, nothing loaded from the network) and opened in
headless Chromium from file:// URLs, as a reader opens it (pages load, images decode, MathJax typesets every
formula, the search page finds a word).

The browser part needs Chromium and its driver from the system (Debian: ``apt-get install chromium
chromium-driver``; never downloaded) and ``selenium`` (the dev extra); without them it is skipped with one
line saying what to install, and with ``AGAN_REQUIRE_BROWSER=1`` (set by ``.ci/run``) it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import pytest

from tests.browser import chromium

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
DOCS = sorted(ROOT.glob("docs/*.md"))


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """book/build.py --notebooks stored into a temporary folder (never book/_build): the site and its log."""
    out = tmp_path_factory.mktemp("book")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(ROOT / "book" / "build.py"), "--notebooks", "stored",
                        "--out", str(out), "-q"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    log = r.stdout + r.stderr
    assert r.returncode == 0, f"book/build.py exited {r.returncode}:\n{log[-4000:]}"
    print(f"book built in {time.perf_counter() - t0:.1f} s")
    return SimpleNamespace(html=out / "html", src=out / "src", log=log)


class _Links(HTMLParser):
    """(tag, attribute, value) of every href/src, and the ids of a page."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v is not None:
                self.refs.append((tag, k, v))
            elif k == "id" and v:
                self.ids.add(v)


def _parse(page: Path) -> _Links:
    p = _Links()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def _page_name(p: Path) -> str:
    return p.relative_to(ROOT).with_suffix(".html").as_posix()


def test_navigation_is_the_notebooks_in_paper_order_then_the_docs(book):
    index = (book.html / "index.html").read_text(encoding="utf-8")
    # the page body's tables of contents (the sidebar repeats them: not counted)
    blocks = re.findall(r'<div class="toctree-wrapper compound">(.*?)</div>', index, re.S)
    hrefs = [h for b in blocks for h in re.findall(r'class="toctree-l1"><a class="reference internal" '
                                                  r'href="([^"#]+)"', b)]
    notebooks = [_page_name(p) for p in NOTEBOOKS]
    docs = [_page_name(p) for p in DOCS]
    assert len(notebooks) >= 9 and docs
    assert hrefs[:len(notebooks)] == notebooks  # 00, 01, ... 08: the paper's order
    assert sorted(hrefs[len(notebooks):len(notebooks) + len(docs)]) == sorted(docs)
    for href in hrefs:
        assert (book.html / href).is_file(), href
    # previous/next links walk the same order
    first = (book.html / notebooks[1]).read_text(encoding="utf-8")
    assert f'href="{Path(notebooks[0]).name}"' in first and f'href="{Path(notebooks[2]).name}"' in first


def test_the_stored_notebooks_are_shown_never_executed(book):
    for nb in NOTEBOOKS:
        staged = json.loads((book.src / nb.relative_to(ROOT)).read_text(encoding="utf-8"))
        codes = [c for c in staged["cells"] if c["cell_type"] == "code"]
        shown = [c for c in codes if c.get("outputs") or c.get("execution_count") is not None]
        assert codes and not shown, nb.name


def test_internal_links_resolve_and_nothing_loads_from_the_network(book):
    pages = sorted(book.html.rglob("*.html"))
    assert len(pages) >= len(NOTEBOOKS) + len(DOCS) + 1
    parsed = {p.resolve(): _parse(p) for p in pages}
    missing, external, anchors = [], [], []
    for page, links in parsed.items():
        for tag, attr, value in links.refs:
            url = urlsplit(value)
            if url.scheme in ("http", "https") or value.startswith("//"):
                if tag != "a":  # an image, script or stylesheet from the network: blank offline
                    external.append(f"{page.relative_to(book.html.resolve())}: <{tag} {attr}={value}>")
                continue
            if url.scheme or not url.path:
                continue  # mailto:, javascript:, data:, an anchor on the page itself
            target = (page.parent / unquote(url.path)).resolve()
            where = f"{page.relative_to(book.html.resolve())}: {value}"
            if not target.is_file():
                missing.append(where)
            elif url.fragment and target.suffix == ".html":
                anchors.append((where, url.fragment, url.fragment in parsed[target].ids))
    assert not missing, "links to files the site does not have:\n" + "\n".join(missing)
    assert not external, "resources loaded from the network:\n" + "\n".join(external)
    # links into another page's sections resolve (MyST's heading anchors); one that does not is one the build
    # reported (a link whose anchor matches no heading in the docs themselves), never a silent one
    assert any(ok for _, _, ok in anchors), "no link to another page's section resolves"
    silent = [f"{w} (#{frag})" for w, frag, ok in anchors if not ok and f"'{frag}'" not in book.log]
    assert not silent, "links to sections that do not exist, not reported by the build:\n" + "\n".join(silent)


def test_search_index_holds_the_pages_and_their_words(book):
    text = (book.html / "searchindex.js").read_text(encoding="utf-8")
    assert text.startswith("Search.setIndex(") and (book.html / "search.html").is_file()
    index = json.loads(text[len("Search.setIndex("):text.rindex(")")])
    docnames = index["docnames"]
    for p in NOTEBOOKS + DOCS:
        assert p.relative_to(ROOT).with_suffix("").as_posix() in docnames
    # "raindrop" (the paper's subject) is indexed, in notebook 01's text or title among others (Sphinx keeps
    # a word of a page's title under titleterms, not terms)
    hits = set()
    for kind in ("terms", "titleterms"):
        found = index[kind].get("raindrop", [])
        hits |= set(found if isinstance(found, list) else [found])
    assert docnames.index("notebooks/01_raindrop_formation") in hits
    assert len(hits) > len(NOTEBOOKS) // 2


def test_math_is_rendered_by_a_bundled_mathjax(book):
    assert (book.html / "_static" / "mathjax" / "MathJax.js").is_file()
    page = (book.html / "notebooks" / "01_raindrop_formation.html").read_text(encoding="utf-8")
    assert 'src="../_static/mathjax/MathJax.js?config=' in page and 'class="math' in page


# --- in Chromium ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    b = chromium("1400,1000")
    b.set_script_timeout(60)
    yield b
    b.quit()


# What a page shows once loaded and typeset: its title, every image's decoded width, the formulas Sphinx wrote
# (.math) and how many of them MathJax replaced, and any $...$ or \( left as text outside code.
_INSPECT = r"""
const done = arguments[arguments.length - 1];
function report() {
  // Sphinx's formulas (MathJax's own output also has class "math": not counted)
  const math = Array.from(document.querySelectorAll('.body .math.notranslate'));
  const typeset = math.filter(
      m => m.querySelector('.MathJax, .MathJax_Display, .MathJax_SVG, mjx-container'));
  const walker = document.createTreeWalker(document.querySelector('.body'), NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest('pre, code, script, .highlight, .MathJax_Preview')) continue;
    const m = n.textContent.match(/\$[^$\s][^$]*\$|\\\(|\\\[/);
    if (m) raw.push(m[0].slice(0, 60));
  }
  done({h1: (document.querySelector('h1') || {}).textContent || '',
        images: Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]),
        math: math.length, typeset: typeset.length, raw: raw,
        mathjax: !!window.MathJax, fontWarning: !!document.getElementById('MathJax_Font_Warning')});
}
if (window.MathJax && MathJax.Hub) { MathJax.Hub.Queue(report); } else { report(); }
"""


def _open(b, page: Path, timeout: float = 60) -> None:
    b.get(page.as_uri())
    deadline = time.time() + timeout
    while b.execute_script("return document.readyState") != "complete":
        assert time.time() < deadline, f"{page.name} did not load in {timeout:.0f} s"
        time.sleep(0.1)
    # MathJax.js loads async: wait until its Hub exists on pages that include it
    while b.execute_script("return !!document.querySelector('script[src*=\"MathJax.js\"]') && "
                           "!(window.MathJax && window.MathJax.Hub && window.MathJax.isReady)"):
        assert time.time() < deadline, f"MathJax did not start on {page.name} in {timeout:.0f} s"
        time.sleep(0.1)


def _has_dollar_math(nb: Path) -> bool:
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    return any(re.search(r"\$[^$\s][^$]*\$", "".join(c["source"]))
               for c in cells if c["cell_type"] == "markdown")


def test_pages_load_with_images_and_typeset_math_in_chromium(book, browser):
    pages = ([book.html / "index.html"] + [book.html / _page_name(p) for p in NOTEBOOKS]
             + [book.html / "docs" / "paper.html", book.html / "README.html"])
    problems = []
    for page in pages:
        _open(browser, page)
        seen = browser.execute_async_script(_INSPECT)
        name = page.relative_to(book.html).as_posix()
        if not seen["h1"].strip():
            problems.append(f"{name}: no title")
        broken = [src for src, complete, width in seen["images"] if not (complete and width > 0)]
        if broken:
            problems.append(f"{name}: images not shown {broken}")
        if not seen["images"] and not name.startswith("docs/"):  # figures, badges; docs/paper has none
            problems.append(f"{name}: no image on the page")
        if seen["math"] != seen["typeset"] or seen["raw"]:
            problems.append(f"{name}: {seen['typeset']}/{seen['math']} formulas typeset, "
                            f"left raw: {seen['raw'][:5]}")
        if seen["fontWarning"]:
            problems.append(f"{name}: MathJax found no font")
        if name.startswith("notebooks/") and _has_dollar_math(ROOT / name.replace(".html", ".ipynb")):
            if not (seen["mathjax"] and seen["math"] > 0):
                problems.append(f"{name}: its $...$ math is not on the page")
    assert not problems, "\n".join(problems)


def test_search_page_finds_a_word_in_chromium(book, browser):
    page = book.html / "search.html"
    browser.get(page.as_uri() + "?q=raindrop")
    deadline = time.time() + 60
    results: list[str] = []
    while time.time() < deadline and not results:
        results = browser.execute_script(
            "return Array.from(document.querySelectorAll('#search-results ul.search li a'))"
            ".map(a => a.getAttribute('href'));")
        time.sleep(0.2)
    assert results, "search.html?q=raindrop listed no page"
    assert any("notebooks/01_raindrop_formation.html" in h for h in results), results
