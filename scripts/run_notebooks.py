#!/usr/bin/env python
"""Run the kit's notebooks with papermill, in order, with a parameters file, timeouts and a log.

    python scripts/run_notebooks.py                          # params/cpu.yaml, every notebook
    python scripts/run_notebooks.py --params params/paper.yaml
    python scripts/run_notebooks.py --only 02 03 -p SIZE=64   # a subset, with extra parameters

Executed copies go to notebooks/executed/ (git-ignored), each also as HTML beside it
(notebooks/executed/NAME.html, nbconvert; readable without Jupyter), one log line per notebook goes to
notebooks/executed/run.log and the timings to notebooks/executed/summary.json. The stored
notebooks are never modified. The parameters file (see params/cpu.yaml) has ``common`` values,
per-notebook blocks under ``notebooks``, an optional ``order``, ``timeout_s`` (per notebook: how long it may
go without progress) and ``html`` (default true; ``--no-html`` turns it off). A notebook
receives only the names its ``parameters`` cell declares; a name that no notebook declares is
an error (a typo would otherwise be silently ignored).
After a run of every notebook (no ``--only``) in which each one ran, the book is built from the executed
copies (``book/build.py --notebooks executed``: book/_build/html/index.html, readable without a server or the
network; ``--no-book`` skips it). Exit status: 0 when every notebook ran, 1 when one failed (the run stops
there unless ``--keep-going``), 2 for a bad command line or parameters file; a book that fails to build is
reported and leaves the status as it is.

Progress, not wall time, decides when a notebook is stopped: a long training on a slow CPU is never cut off
while it works. A notebook makes progress while its kernel sends output or it writes files under runs/ (the
training logs every few steps and checkpoints); after ``timeout_s`` seconds of neither, the kernel is
interrupted, and the message says how to go on (a training run resumes from its last checkpoint).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
log = logging.getLogger("run_notebooks")


def discover(folder: Path = NOTEBOOKS) -> list[Path]:
    """The numbered notebooks (NN_name.ipynb) of ``folder``, in numeric order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def load_params(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such parameters file (see params/cpu.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise TypeError(f"{path}: expected a mapping with common/notebooks/order/timeout_s")
    unknown = set(data) - {"preset", "order", "timeout_s", "common", "notebooks", "html"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}")
    if not isinstance(data.get("html", True), bool):
        raise TypeError(f"{path}: html must be true or false, got {data['html']!r}")
    return data


def parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"-p {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def notebook_parameters(path: Path) -> dict:
    """Name -> default of a notebook's ``parameters`` cell (NAME = literal lines, read with ast)."""
    import ast

    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}")
    src = cells[0]["source"]
    out = {}
    for stmt in ast.parse("".join(src) if isinstance(src, list) else src).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
    return out


def plan(params: dict, notebooks: list[Path], overrides: dict,
         only: list[str] | None) -> list[tuple[Path, dict, int]]:
    """(notebook, injected parameters, timeout) in the order to run them; validates every name."""
    by_stem = {p.stem: p for p in notebooks}
    order = params.get("order") or [p.stem for p in notebooks]
    missing = [n for n in order if n not in by_stem]
    if missing:
        raise ValueError(f"order names notebooks that do not exist: {missing}")
    order += [p.stem for p in notebooks if p.stem not in order]  # new notebooks still run, last
    per_nb = params.get("notebooks") or {}
    bad = [n for n in per_nb if n not in by_stem]
    if bad:
        raise ValueError(f"parameters given for notebooks that do not exist: {bad}")
    if only:
        order = [n for n in order if any(n == o or n.startswith(o) for o in only)]
        if not order:
            raise ValueError(f"--only {' '.join(only)} matches no notebook")
    timeouts = params.get("timeout_s") or {}
    declared = {n: notebook_parameters(by_stem[n]) for n in order}
    all_names = set().union(*declared.values()) if declared else set()
    for name in list(params.get("common") or {}) + list(overrides):
        if name not in all_names:
            raise ValueError(f"parameter {name!r} is declared by none of the notebooks {order}")
    jobs = []
    for n in order:
        values = {**(params.get("common") or {}), **(per_nb.get(n) or {}), **overrides}
        for k in per_nb.get(n) or {}:
            if k not in declared[n]:
                raise ValueError(f"{n}: parameter {k!r} is not in its parameters cell "
                                 f"(it declares {sorted(declared[n])})")
        injected = {k: v for k, v in values.items() if k in declared[n]}
        jobs.append((by_stem[n], injected, int(timeouts.get(n, timeouts.get("default", 600)))))
    return jobs


def check_kernel(kernel_name: str = "python3") -> str:
    """The interpreter the kernel will run; warns when it is not this one (``import agan`` could fail)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel_name)
    exe = spec.argv[0]
    # jupyter_client launches "python"/"python3" kernels with sys.executable
    if exe in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        exe = sys.executable
    if Path(exe).resolve() != Path(sys.executable).resolve():
        log.warning("kernel %r runs %s, not this interpreter %s: `import agan` may fail there "
                    "(run `%s -m ipykernel install --sys-prefix`)",
                    kernel_name, exe, sys.executable, sys.executable)
    return exe


def write_html(executed: Path) -> Path:
    """Write an executed notebook as HTML beside it (NAME.ipynb -> NAME.html, nbconvert's HTML exporter:
    the outputs, figures included, as they were computed). Returns the HTML path."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb, resources={"metadata": {"name": executed.stem}})
    out = executed.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def newest_mtime(folder: Path) -> float:
    """The latest modification time of a file under ``folder`` (0 when there is none)."""
    newest = 0.0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
            except OSError:  # removed meanwhile
                pass
    return newest


class Watchdog:
    """Interrupts a notebook's kernel after ``stall_s`` seconds without progress: no message from the kernel
    (papermill's client reports each one through :meth:`saw_output`) and no file written under ``watch``.

        with Watchdog(stall_s, [ROOT / "runs"]) as dog:
            pm.execute_notebook(...)          # patched so that each kernel message calls dog.saw_output
        dog.fired                             # True when it interrupted the kernel
    """

    def __init__(self, stall_s: float, watch: list[Path]):
        import threading

        self.stall_s, self.watch, self.poll_s = stall_s, watch, min(5.0, stall_s / 4)
        self.last = time.time()
        self.client = None
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def saw_output(self, client) -> None:
        self.client, self.last = client, time.time()

    def progress_at(self) -> float:
        return max([self.last] + [newest_mtime(p) for p in self.watch if p.is_dir()])

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            if time.time() - self.progress_at() > self.stall_s and self.client is not None:
                self.fired = True
                try:  # KeyboardInterrupt inside the running cell: papermill reports the cell as failed
                    self.interrupt(self.client.km)
                except Exception as e:  # noqa: BLE001
                    log.warning("could not interrupt the kernel: %s", e)
                return

    @staticmethod
    def interrupt(km) -> None:
        """SIGINT to the kernel process (papermill's kernel manager is asynchronous: its interrupt_kernel is
        a coroutine of the executing thread's event loop)."""
        import signal

        pid = getattr(getattr(km, "provisioner", None), "pid", None)
        if pid is None:
            raise RuntimeError("the kernel's process id is unknown")
        os.kill(pid, signal.SIGINT)

    def __enter__(self):
        from papermill.clientwrap import PapermillNotebookClient

        original = PapermillNotebookClient.process_message
        dog = self

        def process_message(client, *args, **kwargs):
            dog.saw_output(client)
            return original(client, *args, **kwargs)

        self._restore = (PapermillNotebookClient, original)
        PapermillNotebookClient.process_message = process_message
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        cls, original = self._restore
        cls.process_message = original
        return False


def how_to_continue(nb: Path) -> str:
    return (f"run the same command again (make reproduce): {nb.stem} starts over, a training run resumes "
            "from its last checkpoint in runs/ and finished ablation rows are kept; or raise timeout_s in "
            "the parameters file")


def run(jobs, out_dir: Path, keep_going: bool = False, html: bool = True) -> list[dict]:
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for nb, injected, timeout in jobs:
        out = out_dir / nb.name
        log.info("%s: start (stopped after %ds without progress) parameters %s", nb.stem, timeout,
                 json.dumps(injected))
        t0 = time.perf_counter()
        status, error = "ok", ""
        dog = Watchdog(timeout, [ROOT / "runs"])  # bound before the try: read after any failure below
        try:
            with dog:
                pm.execute_notebook(str(nb), str(out), parameters=injected, kernel_name="python3",
                                    cwd=str(nb.parent), execution_timeout=None, progress_bar=False,
                                    log_output=False, request_save_on_cell_execute=True)
        # papermill raises PapermillExecutionError with the cell's traceback
        except Exception as e:  # noqa: BLE001
            last_line = str(e).strip().splitlines()[-1] if str(e).strip() else ""
            status, error = "failed", f"{type(e).__name__}: {last_line}"
        seconds = time.perf_counter() - t0
        if dog.fired:
            status, error = "stalled", (f"no progress for {timeout}s (no output, no file written under "
                                        f"runs/), interrupted after {seconds:.0f}s; {how_to_continue(nb)}")
        page = ""
        if html and out.is_file():  # also for a failed notebook: the page shows where it stopped
            try:
                page = str(_shown(write_html(out)))
            # the HTML copy is a convenience: say so, keep the run's status
            except Exception as e:  # noqa: BLE001
                log.warning("%s: no HTML copy (%s: %s)", nb.stem, type(e).__name__, e)
        results.append({"notebook": nb.stem, "status": status, "seconds": round(seconds, 1),
                        "timeout_s": timeout, "parameters": injected, "output": str(_shown(out)),
                        "html": page, "error": error})
        (log.info if status == "ok" else log.error)("%s: %s in %.1fs%s", nb.stem, status, seconds,
                                                    f" -- {error} (see {out})" if error else "")
        (out_dir / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
        if status != "ok" and not keep_going:
            break
    return results


def build_book(executed: Path) -> Path | None:
    """The book (book/build.py) from the executed copies in ``executed``; its index page, None when the
    build failed (logged: the book is a convenience, the run's status stands)."""
    import subprocess

    cmd = [sys.executable, str(ROOT / "book" / "build.py"), "--notebooks", "executed",
           "--executed", str(executed), "-q"]
    log.info("book: building from the executed copies in %s", _shown(executed))
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc != 0:
        log.warning("book: not built (book/build.py exited %d; `make book` retries it)", rc)
        return None
    index = ROOT / "book" / "_build" / "html" / "index.html"
    log.info("book: built in %.1fs, open %s", time.perf_counter() - t0, _shown(index))
    return index


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Example: python scripts/run_notebooks.py --params params/paper.yaml")
    ap.add_argument("--params", type=Path, default=ROOT / "params" / "cpu.yaml",
                    help="parameters file (default params/cpu.yaml; params/paper.yaml for a GPU)")
    ap.add_argument("--only", nargs="+", metavar="NN",
                    help="run only these notebooks (prefix or stem, e.g. 02)")
    ap.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                    help="inject NAME=VALUE (YAML) into every notebook that declares NAME")
    ap.add_argument("--out", type=Path, default=NOTEBOOKS / "executed", help="folder for executed copies")
    ap.add_argument("--keep-going", action="store_true", help="run the remaining notebooks after a failure")
    ap.add_argument("--no-html", action="store_true",
                    help="do not write NAME.html beside each executed copy "
                         "(the parameters file's html: false)")
    ap.add_argument("--no-book", action="store_true",
                    help="do not build the book after a full run (book/build.py; make book builds it later)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = ap.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        handlers=[logging.StreamHandler(sys.stdout),
                                  logging.FileHandler(args.out / "run.log", mode="a")])
    try:
        params = load_params(args.params)
        jobs = plan(params, discover(), parse_overrides(args.parameter), args.only)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"run_notebooks: error: {e}", file=sys.stderr)
        return 2
    log.info("parameters %s (preset %s), %d notebooks -> %s", args.params, params.get("preset", "?"),
             len(jobs), args.out)
    if args.dry_run:
        for nb, injected, timeout in jobs:
            print(f"{nb.stem:28s} timeout {timeout:6d}s  {json.dumps(injected)}")
        return 0
    check_kernel()
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    t0 = time.perf_counter()
    results = run(jobs, args.out, args.keep_going, html=params.get("html", True) and not args.no_html)
    total = time.perf_counter() - t0
    print("\nnotebook                     status      seconds")
    for r in results:
        print(f"{r['notebook']:28s} {r['status']:10s} {r['seconds']:8.1f}")
    print(f"{'total':28s} {'':10s} {total:8.1f}")
    pages = [r["html"] for r in results if r.get("html")]
    if pages:
        print(f"executed notebooks and their HTML pages in {_shown(args.out)}/")
    ok = len(results) == len(jobs) and all(r["status"] == "ok" for r in results)
    if ok and not args.only and not args.no_book:
        build_book(args.out.resolve())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
