#!/usr/bin/env python
"""Build the kit's book: a static HTML site of the notebooks (in paper order), docs/ and the README.

    python book/build.py                        # book/_build/html/index.html (make book)
    python book/build.py --notebooks stored     # the stored notebooks even where executed copies exist
    python book/build.py --out /tmp/book -q     # another output folder, Sphinx's warnings only

Two steps. (1) Staging: the pages that book/index.md's table of contents lists are copied into OUT/src
at their repository paths: each numbered notebook from notebooks/executed/ (the copies ``make reproduce``
writes, with their outputs) where there is one, else the stored notebook (no outputs); docs/*.md, README.md
and the other listed Markdown pages as they are. Links are rewritten in the copies only (docs/ and notebooks/
are never touched): a link to another page of the book stays (MyST resolves it, anchors included); a link to
another file of the repository (a figure, a .py, a .csv) copies that file beside the page, so that it shows
(images) or downloads (the rest) without the network; a link to a folder becomes plain text; the Colab badge
image is replaced by a local one (the badge's link to Colab stays). (2) ``sphinx-build -c book OUT/src
OUT/html`` with book/conf.py; notebooks are never executed. Exit status: Sphinx's (0: the site was built),
2 when a page is missing.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
EXECUTED = ROOT / "notebooks" / "executed"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "_static_book/colab-badge.svg"  # staged from book/colab-badge.svg, repository-root relative

# a Markdown link or image: [text](target) or [text](target "title"); group 1 is "!" for an image
LINK = re.compile(r'(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^()\s]+)(\s+"[^"]*")?\)')
TOCTREE = re.compile(r"```\{toctree\}\n(.*?)```", re.S)


def toc_entries(index: Path = BOOK / "index.md") -> list[str]:
    """The entries of index.md's toctrees, in order (repository paths without suffix; may hold globs)."""
    entries = []
    for block in TOCTREE.findall(index.read_text(encoding="utf-8")):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                entries.append(line)
    return entries


def pages(entries: list[str], root: Path = ROOT) -> list[str]:
    """Repository paths (with suffix) of the pages the entries name: ``notebooks/*`` is the numbered
    notebooks NN_name.ipynb; other globs match .md files; a plain entry is NAME.ipynb or NAME.md."""
    out: list[str] = []
    for entry in entries:
        if entry.startswith("notebooks/") and "*" in entry:
            found = sorted(root.glob("notebooks/[0-9][0-9]_*.ipynb"))
        elif "*" in entry:
            found = sorted(root.glob(entry + ".md"))
        else:
            found = [p for p in (root / f"{entry}.ipynb", root / f"{entry}.md") if p.is_file()][:1]
            if not found:
                raise FileNotFoundError(f"book/index.md lists {entry!r}: no {entry}.ipynb or {entry}.md")
        for p in found:
            rel = p.relative_to(root).as_posix()
            if rel not in out:
                out.append(rel)
    return out


def expand_toc(index_text: str, root: Path = ROOT) -> str:
    """index.md with each toctree's entries written out: a glob becomes the pages it matches that no entry
    before it names (Sphinx's own globbing warns when a glob adds nothing)."""
    seen: set[str] = set()

    def block(m: re.Match) -> str:
        lines = []
        for line in m.group(1).splitlines():
            entry = line.strip()
            if entry == ":glob:":
                continue
            if not entry or entry.startswith(":"):
                lines.append(line)
                continue
            for page in pages([entry], root):
                name = page.rsplit(".", 1)[0]
                if name not in seen:
                    seen.add(name)
                    lines.append(name)
        return "```{toctree}\n" + "\n".join(lines) + "\n```"

    return TOCTREE.sub(block, index_text)


class Stager:
    """Copies pages and the files they link to into ``src``, rewriting links as the module says."""

    def __init__(self, src: Path, site_pages: list[str], root: Path = ROOT):
        self.src, self.root, self.site_pages = src, root, set(site_pages)
        self.assets: set[str] = set()
        self.dropped: list[str] = []

    def target(self, page: str, target: str, text: str) -> str | None:
        """The new target of a link on ``page`` (repository path); None: drop the link, keep its text."""
        if target == COLAB_BADGE:
            return posixpath.relpath(LOCAL_BADGE, posixpath.dirname(page) or ".")
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            return target  # http:, mailto:, an anchor on this page
        path = target.split("#", 1)[0]
        repo = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
        if repo.startswith("../") or repo == "..":
            return target  # outside the repository: left for Sphinx to report
        if repo in self.site_pages:
            return target
        full = self.root / repo
        if full.is_dir():
            self.dropped.append(f"{page}: [{text}]({target}) (a folder)")
            return None
        if full.is_file():
            self.assets.add(repo)
        return target  # a missing file stays a link: Sphinx warns about it

    def rewrite(self, page: str, markdown: str) -> str:
        def sub(m: re.Match) -> str:
            bang, text, target, title = m.group(1), m.group(2), m.group(3), m.group(4) or ""
            text = LINK.sub(sub, text)  # a badge: [![alt](image)](link)
            new = self.target(page, target, text)
            return text if new is None and not bang else f"{bang}[{text}]({new or target}{title})"

        return LINK.sub(sub, markdown)

    def markdown(self, page: str, source: Path) -> None:
        text = self.rewrite(page, source.read_text(encoding="utf-8"))
        if not re.match(r"\s*(<!--.*?-->\s*)*# ", text, re.S):  # a page needs a title for the navigation
            text = f"# {page}\n\n{text}"
        self._write(page, text)

    def notebook(self, page: str, source: Path) -> None:
        nb = json.loads(source.read_text(encoding="utf-8"))
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "markdown":
                cell["source"] = self.rewrite(page, _text(cell["source"]))
            for out in cell.get("outputs", []):  # captions written by code (display(Markdown(...)))
                data = out.get("data", {})
                if "text/markdown" in data:
                    data["text/markdown"] = self.rewrite(page, _text(data["text/markdown"]))
        self._write(page, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")

    def copy_assets(self) -> None:
        for repo in sorted(self.assets):
            dest = self.src / repo
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.root / repo, dest)

    def _write(self, page: str, text: str) -> None:
        dest = self.src / page
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def stage(src: Path, notebooks: str = "auto", executed: Path = EXECUTED, root: Path = ROOT,
          log=print) -> dict:
    """Fill ``src`` (emptied first) with the book's pages; returns {page: the file it was staged from}."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    listed = pages(toc_entries(), root)
    stager = Stager(src, listed + ["index.md"], root)
    origin = {}
    for page in listed:
        source = root / page
        if page.endswith(".ipynb"):
            copy = executed / Path(page).name
            if notebooks == "executed" or (notebooks == "auto" and copy.is_file()):
                if not copy.is_file():
                    raise FileNotFoundError(f"{copy}: no executed copy (run make reproduce, or use "
                                            "--notebooks auto)")
                if copy.stat().st_mtime < source.stat().st_mtime:
                    log(f"book: {_shown(copy)} is older than {page}: the page shows the last run")
                source = copy
            stager.notebook(page, source)
        else:
            stager.markdown(page, source)
        origin[page] = source
    index = BOOK / "index.md"  # the landing page, its links read as from the repository root
    stager._write("index.md", stager.rewrite("index.md", expand_toc(index.read_text(encoding="utf-8"), root)))
    stager.copy_assets()
    (src / LOCAL_BADGE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BOOK / "colab-badge.svg", src / LOCAL_BADGE)
    for line in stager.dropped:
        log(f"book: link to a folder shown as text: {line}")
    return origin


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def build(out: Path, notebooks: str = "auto", executed: Path = EXECUTED, quiet: bool = False,
          jobs: int = 1) -> int:
    """Stage into out/src and build out/html; Sphinx's exit status."""
    t0 = time.perf_counter()
    origin = stage(out / "src", notebooks, executed)
    n_exec = sum(1 for o in origin.values() if o.parent == executed)
    n_nb = sum(1 for p in origin if p.endswith(".ipynb"))
    print(f"book: {len(origin) + 1} pages staged in {_shown(out / 'src')} "
          f"({n_nb} notebooks, {n_exec} of them executed copies)")
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(BOOK), "-d", str(out / "doctrees"),
           "-j", str(jobs), str(out / "src"), str(out / "html")]
    if quiet:
        cmd.insert(3, "-q")
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc == 0:
        print(f"book: built in {time.perf_counter() - t0:.1f} s; open {_shown(out / 'html' / 'index.html')} "
              "in a browser (no server or network needed)")
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=BOOK / "_build",
                    help="output folder: OUT/html is the site, OUT/src the staged pages "
                         "(default book/_build)")
    ap.add_argument("--notebooks", choices=["auto", "executed", "stored"], default="auto",
                    help="auto: each notebook's executed copy where there is one, else the stored notebook; "
                         "executed: executed copies only (an error when one is missing); stored: never them")
    ap.add_argument("--executed", type=Path, default=EXECUTED,
                    help="folder of the executed copies (default notebooks/executed)")
    ap.add_argument("-q", "--quiet", action="store_true", help="Sphinx prints warnings and errors only")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="Sphinx's parallel jobs (default 1)")
    args = ap.parse_args(argv)
    try:
        return build(args.out.resolve(), args.notebooks, args.executed.resolve(), args.quiet, args.jobs)
    except FileNotFoundError as e:
        print(f"book: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
