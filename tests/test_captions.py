"""Notebook 02's "What you see here" captions are computed from the run and follow its numbers.

The notebook is executed with papermill (OMP_NUM_THREADS=1, into tmp_path) at two parameter sets whose
outcomes differ: the stored defaults and a small, short variant. In each executed copy every decimal number a
caption states must be one the notebook printed before it, and each conditional word (sharpens / does not
sharpen, ahead of / behind, grows / levels off, ...) must be the one the printed numbers call for. The stored
notebook itself holds no "What you see here" caption: the code writes them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOK = NB_DIR / "02_attention_maps.ipynb"
CAPTION = "**What you see here:**"
TOL = 0.02  # the notebook's rule (section 4b): a change of 0.02 or less counts as none
RUNS = {  # name -> papermill parameters
    "defaults": {},
    "small": {"SIZE": 48, "FIT_STEPS": 8, "N_EXAMPLES": 1},  # 8 steps: the maps have not moved yet
}
NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def _cells(path: Path) -> list[tuple[str, list[str]]]:
    """(printed text, markdown outputs) of each code cell of an executed notebook."""
    nb = json.loads(path.read_text())
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        printed, markdown = "", []
        for out in cell["outputs"]:
            assert out["output_type"] != "error", f"{out.get('ename')}: {out.get('evalue')}"
            if out["output_type"] == "stream":
                printed += _text(out["text"])
            elif "text/markdown" in out.get("data", {}):
                markdown.append(_text(out["data"]["text/markdown"]))
        cells.append((printed, markdown))
    return cells


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """name -> [(printed, markdown outputs) per code cell] for each parameter set of RUNS."""
    pm = pytest.importorskip("papermill")
    out_dir = tmp_path_factory.mktemp("captions")
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the kernel inherits it: small tensors, shared cores
    try:
        runs = {}
        for name, params in RUNS.items():
            out = out_dir / f"02_{name}.ipynb"
            pm.execute_notebook(str(NOTEBOOK), str(out), parameters=params, kernel_name="python3",
                                cwd=str(NB_DIR), progress_bar=False, execution_timeout=600)
            runs[name] = _cells(out)
        return runs
    finally:
        if old is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = old


def _cell(cells, marker: str) -> tuple[str, str]:
    """(printed text, the caption) of the one cell whose printed text holds marker."""
    hits = [(p, md) for p, md in cells if marker in p]
    assert len(hits) == 1, f"expected one cell printing {marker!r}, found {len(hits)}"
    printed, markdown = hits[0]
    captions = [m for m in markdown if m.startswith(CAPTION)]
    assert len(captions) == 1, f"the cell printing {marker!r} shows {len(captions)} computed captions"
    return printed, captions[0]


def _after(printed: str, label: str) -> str:
    """The rest of the printed line that starts with label."""
    for line in printed.splitlines():
        if line.startswith(label):
            return line[len(label):]
    raise AssertionError(f"no printed line starts with {label!r}")


def _list(printed: str, label: str) -> list[float]:
    return [float(v) for v in json.loads(_after(printed, label).strip())]


def _floats(text: str) -> list[float]:
    return [float(v) for v in NUMBER.findall(text)]


def _trend(a: float, b: float) -> str:
    return "rises" if b - a > TOL else "falls" if a - b > TOL else "hardly changes"


def _verdict(d_iou: str, d_con: str) -> str:
    if "rises" in (d_iou, d_con) and "falls" not in (d_iou, d_con):
        return "sharpens"
    if "rises" in (d_iou, d_con):
        return "sharpens by one measure and blurs by the other"
    return "does not sharpen"


def _arrow(values: list[float]) -> str:
    return " → ".join(f"{v:.3f}" for v in values)


def test_stored_notebook_states_no_run_dependent_caption():
    nb = json.loads(NOTEBOOK.read_text())
    stored = [_text(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert not [s for s in stored if CAPTION in s], "a static 'What you see here' caption"
    code = "".join(_text(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert code.count(f'f"{CAPTION}') == 6  # sections 2, 3, 4, 4b, 5 and 6 write theirs


@pytest.mark.parametrize("name", list(RUNS))
def test_every_caption_number_was_printed(executed, name):
    """Each decimal number in a caption equals (to the caption's precision) a number printed before it."""
    printed_so_far, n_captions = [], 0
    for printed, markdown in executed[name]:
        printed_so_far += _floats(printed)
        for caption in (m for m in markdown if m.startswith(CAPTION)):
            n_captions += 1
            for text in NUMBER.findall(caption):
                value, half_unit = float(text), 0.5 * 10.0 ** -len(text.split(".")[1])
                assert any(abs(value - p) <= half_unit + 1e-9 for p in printed_so_far), \
                    f"{name}: caption number {text} was never printed: {caption[:120]}..."
    assert n_captions == 6, f"{name}: {n_captions} computed captions, expected 6"


@pytest.mark.parametrize("name", list(RUNS))
def test_section_4b_verdicts_follow_the_numbers(executed, name):
    printed, caption = _cell(executed[name], "N = 1: IoU(A_1 >= 0.5, M)")
    iou_n = _list(printed, "N = 4: IoU(A_t >= 0.5, M), t = 1..4: ")
    con_n = _list(printed, "N = 4: contrast, t = 1..4: ")
    iou_1, con_1 = (float(v) for v in re.fullmatch(r" (\S+); contrast (\S+)",
                                                    _after(printed, "N = 1: IoU(A_1 >= 0.5, M)")).groups())
    floor = float(_after(printed, "IoU of a map that marks every pixel (coverage of M): "))
    d_iou, d_con = _trend(iou_n[0], iou_n[-1]), _trend(con_n[0], con_n[-1])
    verdict = _verdict(d_iou, d_con)
    assert f"goes {_arrow(iou_n)} ({d_iou})" in caption
    assert f"the contrast {_arrow(con_n)} ({d_con})" in caption
    assert f"**{verdict}** over $t$" in caption
    assert ("**Why it sharpens:**" in caption) == (verdict == "sharpens")
    assert ("**Why not here:**" in caption) == (verdict != "sharpens")
    vs = "ahead of" if iou_n[-1] - iou_1 > TOL else "behind" if iou_1 - iou_n[-1] > TOL else "level with"
    assert f"**{vs}** the $N = 1$ network's single map: IoU {iou_n[-1]:.3f} vs {iou_1:.3f}" in caption
    assert f"contrast {con_n[-1]:.3f} vs {con_1:.3f}" in caption
    assert ("**Why $N = 1$ can be ahead:**" in caption) == (vs == "behind")
    assert ("below that floor" in caption) == (iou_n[-1] < floor or iou_1 < floor)


def test_the_two_runs_reach_different_verdicts(executed):
    """The variant exercises the other wording: its section 4b verdicts differ from the defaults'."""
    outcomes = set()
    for name in RUNS:
        caption = _cell(executed[name], "N = 1: IoU(A_1 >= 0.5, M)")[1]
        outcomes.add(tuple(re.findall(r"\*\*([a-z][a-z ]+)\*\*", caption)))
    assert len(outcomes) == len(RUNS), f"the runs give the same verdicts {outcomes}: pick another variant"


@pytest.mark.parametrize("name", list(RUNS))
def test_section_4_fit_caption_follows_the_numbers(executed, name):
    printed, caption = _cell(executed[name], "final MSE(A_t, M), t = 1..N:")
    first = _list(printed, "first MSE(A_t, M), t = 1..N: ")
    final_line = _after(printed, "final MSE(A_t, M), t = 1..N: ")
    final = [float(v) for v in json.loads(final_line.split("  L_ATT")[0])]
    n_fall = sum(b < a for a, b in zip(first, final))
    if all(a != b for a, b in zip(first, final)):  # no tie after rounding to 4 decimals
        assert f"{n_fall} of the {len(final)} curves end lower than they start" in caption
    if all(a != b for a, b in zip(final, final[1:])):
        ordered = all(b < a for a, b in zip(final, final[1:]))
        assert ("they end in the order of $t$, $A_N$ lowest" in caption) == ordered
    ratio = float(re.search(r"final MSE\(A_N, M\) / that: ([\d.]+)%", printed).group(1)) / 100
    words = ("hardly a fit yet, close to the constant map" if ratio > 0.9 else "a rough fit, far above 0"
             if ratio > 0.5 else "a closer fit, though not 0" if ratio > 0.1 else "a close fit")
    assert words in caption
    n_up = re.search(r"iterations where sum_t MSE rose: (\d+) of (\d+)", printed).groups()
    assert f"rose on {n_up[0]} of the {n_up[1]} steps" in caption


@pytest.mark.parametrize("name", list(RUNS))
def test_sections_2_3_5_captions_follow_the_numbers(executed, name):
    cells = executed[name]
    printed, caption = _cell(cells, "pair 0: M covers")
    m_cover, foot_cover = (float(v) for v in re.search(r"M covers ([\d.]+)%, the exact footprints ([\d.]+)%",
                                                       printed).groups())
    if abs(abs(m_cover - foot_cover) - 0.1 * foot_cover) > 0.2:  # not at the rule's edge after rounding
        word = ("about as large as" if abs(m_cover - foot_cover) <= 0.1 * foot_cover
                else "larger than" if m_cover > foot_cover else "smaller than")
        assert f"$M$ is {word} the footprints" in caption

    printed, caption = _cell(cells, "max |A_t - A_1| over the pixels")
    spread, top = (float(v) for v in
                   re.search(r"over the pixels: ([\d.]+); max \|A_t\|: ([\d.]+)", printed).groups())
    assert ("nearly the same map" in caption) == (spread < 0.1)
    assert ("almost uniformly dark blue" in caption) == (top < 0.2)

    printed, caption = _cell(cells, "|c_t|")
    h_abs = [float(v) for v in re.findall(r"\|h_t\| ([\d.]+)", printed)]
    c_abs = [float(v) for v in re.findall(r"\|c_t\| ([\d.]+)", printed)]
    assert len(h_abs) == len(c_abs) == 4
    dc = [b - a for a, b in zip(c_abs, c_abs[1:])]
    if all(d != 0 for d in dc):
        word = ("grows at every step" if all(d > 0 for d in dc)
                else "falls at every step" if all(d < 0 for d in dc) else "rises and falls")
        assert f"it {word}" in caption
    dh = [b - a for a, b in zip(h_abs, h_abs[1:])]
    if abs(dh[-1]) != abs(dh[0]):
        assert ("it levels off" in caption) == (abs(dh[-1]) < abs(dh[0]))


@pytest.mark.parametrize("name", list(RUNS))
def test_section_6_caption_follows_the_numbers(executed, name):
    printed, caption = _cell(executed[name], "all images:")
    iou_m = _list(printed, "IoU(A_t >= 0.5, M), t = 1..4, all images: ")
    iou_d = _list(printed, "IoU(A_t >= 0.5, drop layer), t = 1..4: ")
    con_m = _list(printed, "contrast mean(A_t | M) - mean(A_t | not M), t = 1..4: ")
    d_i, d_c = _trend(iou_m[0], iou_m[-1]), _trend(con_m[0], con_m[-1])
    assert f"**{_verdict(d_i, d_c)}** over $t$" in caption
    assert f"IoU with $M$ goes {_arrow(iou_m)} ({d_i}), the contrast {_arrow(con_m)} ({d_c})" in caption
    assert f" goes {_arrow(iou_d)}" in caption.split("IoU with the drop layer")[1]
    errors = [[float(v) for v in json.loads(line.split("MSE(A_t, M), t = 1..N: ")[1].split(" |")[0])]
              for line in printed.splitlines() if line.startswith("image ")]
    assert len(errors) == max(1, RUNS[name].get("N_EXAMPLES", 2))
    down, up = re.search(r"MSE\(A_N, M\) < MSE\(A_1, M\) on (\d+) of \d+ images, > on (\d+)",
                         printed).groups()
    if all(e[0] != e[-1] for e in errors):  # no tie after rounding to 4 decimals
        assert (int(down), int(up)) == (sum(e[-1] < e[0] for e in errors), sum(e[-1] > e[0] for e in errors))
    assert f"falls from $A_1$ to $A_N$ on {down} of the {len(errors)} and rises on {up}" in caption
