"""The explorer notebook in a real browser: a JupyterLab server, headless Chromium driven by Selenium, the
notebook run from the browser, the time-step slider moved, the shown image checked to change.

Needs a Chromium and its driver from the system (Debian: ``apt-get install chromium chromium-driver``;
browsers are never downloaded at run time) and the ``selenium`` package (``pip install -e '.[dev]'``).
Without them the test is skipped with one line saying what to install; with ``AGAN_REQUIRE_BROWSER=1`` (set by
``.ci/run``, which installs both) it fails instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser import chromium

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "08_explorer.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of notebooks/08_explorer.ipynb (the browser's autosave writes there,
    never into the repository); yields the notebook's URL."""
    work = tmp_path_factory.mktemp("lab")
    (work / "notebooks").mkdir()
    shutil.copy(NOTEBOOK, work / "notebooks" / NOTEBOOK.name)
    port, token = _free_port(), "agan-browser-test"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "JUPYTER_CONFIG_DIR": str(work / ".jupyter"),
           "JUPYTER_RUNTIME_DIR": str(work / ".runtime")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
           "--LabApp.expose_app_in_browser=True",
           f"--ServerApp.root_dir={work / 'notebooks'}", "--ServerApp.open_browser=False"]
    log = open(work / "lab.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work / "notebooks")
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"jupyter lab exited: {(work / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not start within 60 s")
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    b = chromium("1600,1200")
    yield b
    b.quit()


def _wait(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _run_all(b, lab: str) -> None:
    """Open the notebook in JupyterLab (the app is exposed as window.jupyterapp), wait for an idle kernel and
    run every cell from the browser, as a student would (Run > Run All Cells)."""
    b.get(lab)
    _wait(lambda: b.execute_script("return !!(window.jupyterapp && document.querySelector('.jp-Notebook'))"),
          90, "JupyterLab and the notebook")
    _wait(lambda: b.execute_script(
        "const w = window.jupyterapp.shell.currentWidget;"
        "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel &&"
        "          w.sessionContext.session.kernel.status === 'idle');"), 120, "an idle kernel")
    b.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")


def _explorer_image(b) -> str | None:
    """The src of the figure inside the explorer's Output widget (a data: URL), None while there is none."""
    return b.execute_script(
        "const imgs = document.querySelectorAll('.jupyter-widgets-output-area img, .widget-output img');"
        "return imgs.length ? imgs[imgs.length - 1].getAttribute('src') : null;")


def test_explorer_slider_changes_the_image_in_chromium(browser, lab):
    b = browser
    _run_all(b, lab)  # 1-2. JupyterLab loads the notebook and its kernel; every cell run from the browser
    before = _wait(lambda: _explorer_image(b), 300, "the explorer's first figure")
    # 3. the time-step slider: IntSlider "time step t", at t = N; one step left shows A_{N-1}
    handle = _wait(lambda: b.execute_script(
        "for (const s of document.querySelectorAll('.widget-slider')) {"
        "  const label = s.querySelector('.widget-label');"
        "  if (label && label.textContent.trim() === 'time step t') return s.querySelector('.noUi-handle');"
        "} return null;"), 60, "the time-step slider")
    readout = b.execute_script("return arguments[0].closest('.widget-slider')"
                               ".querySelector('.widget-readout').textContent.trim();", handle)
    from selenium.webdriver.common.keys import Keys

    handle.click()
    handle.send_keys(Keys.ARROW_LEFT)
    now = lambda: b.execute_script(  # noqa: E731
        "return arguments[0].closest('.widget-slider').querySelector('.widget-readout')"
        ".textContent.trim();", handle)
    _wait(lambda: now() != readout, 30, "the slider's readout to change")
    assert int(now()) == int(readout) - 1  # t = N -> N - 1
    after = _wait(lambda: (lambda s: s if s and s != before else None)(_explorer_image(b)), 60,
                  "the explorer's figure to change after the slider moved")
    assert after.startswith("data:image/png") and after != before


def test_upload_derains_a_photo_in_chromium(browser, lab, tmp_path):
    """Section 5's upload button: a photo chosen through the browser's file input reaches the kernel, is
    derained there, and its view (a figure and the summary line) appears under the button."""
    import base64

    from PIL import Image

    from agan.synth.renderer import make_pair

    photo = tmp_path / "my_rainy_photo.png"
    Image.fromarray(make_pair(0, 0, 64).rain).save(photo)
    b = browser
    _run_all(b, lab)
    _wait(lambda: b.execute_script("return !!document.querySelector('.widget-upload')"), 300,
          "the upload button")
    _wait(lambda: _explorer_image(b), 300, "the explorer's first figure (every cell has run)")
    # ipywidgets' FileUpload keeps its <input type=file> out of the page and clicks it from the button: catch
    # that input as the button clicks it, give it the file as a file chooser would, and fire its change event
    b.execute_script(
        "const click = HTMLInputElement.prototype.click;"
        "HTMLInputElement.prototype.click = function () {"
        "  if (this.type === 'file') { window.__aganFileInput = this; return; } return click.call(this); };"
        "try { document.querySelector('.widget-upload').click(); }"
        "finally { HTMLInputElement.prototype.click = click; }"
        "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"
        "const files = new DataTransfer();"
        "files.items.add(new File([bytes], 'my_rainy_photo.png', {type: 'image/png'}));"
        "window.__aganFileInput.files = files.files;"
        "window.__aganFileInput.dispatchEvent(new Event('change'));",
        base64.b64encode(photo.read_bytes()).decode())
    # the Output widget right under the button: the summary line printed for the photo, and its figure
    found = _wait(lambda: b.execute_script(
        "for (const o of document.querySelectorAll('.widget-output')) {"
        "  if (o.textContent.includes('my_rainy_photo.png (64x64)')) {"
        "    const img = o.querySelector('img');"
        "    return [o.textContent, img ? img.getAttribute('src') : null];"
        "  }"
        "} return null;"), 180, "the uploaded photo's view")
    text, src = found
    assert "A_N >= 0.5 on" in text and "changed by >= 5 grey levels" in text and "error" not in text
    assert src and src.startswith("data:image/png")
