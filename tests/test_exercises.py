"""Every notebook's exercises carry a tag (what they need), a hint and a collapsed answer, and every notebook
has exactly one "Beyond the paper" box (the kit's own additions, in one place)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
TAG = re.compile(r"\[(CPU \d+ min|needs a trained run|needs real photos|GPU)\]")
ITEM = re.compile(r"^(\d+)\. ", re.M)


def _markdown(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def exercises(path: Path) -> list[str]:
    """The numbered items of the notebook's `## Exercises` section (up to the next `## ` heading)."""
    text = "\n".join(_markdown(path))
    start = text.find("## Exercises")
    assert start >= 0, f"{path.name}: no '## Exercises' section"
    body = text[start + len("## Exercises"):]
    end = re.search(r"^## ", body, re.M)
    body = body[:end.start()] if end else body
    starts = [m.start() for m in ITEM.finditer(body)]
    return [body[a:b] for a, b in zip(starts, starts[1:] + [len(body)])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_tag_a_hint_and_an_answer(path):
    items = exercises(path)
    assert len(items) >= 3, f"{path.name}: only {len(items)} exercises"
    for item in items:
        first = item.splitlines()[0]
        assert TAG.search(first), f"{path.name}: exercise without a tag on its first line: {first[:90]!r}"
        assert "*Hint:*" in item, f"{path.name}: exercise without a hint: {first[:90]!r}"
        answer = re.search(r"<details><summary>Answer</summary>(.*?)</details>", item, re.S)
        assert answer and len(answer.group(1).split()) >= 8, \
            f"{path.name}: exercise without a collapsed answer of a sentence or more: {first[:90]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_beyond_the_paper_box(path):
    boxes = [m for m in _markdown(path) if m.lstrip().startswith("> **Beyond the paper.**")]
    assert len(boxes) == 1, f"{path.name}: {len(boxes)} 'Beyond the paper' boxes, expected one"
    assert len(boxes[0].splitlines()) >= 2, f"{path.name}: the box lists nothing"
