"""Run the whole course: execute every notebook, write executed copies, HTML pages and an index.

    python -m course_tools.course [--out DIR] [--profile fast|full] [--only PATTERN] [--timeout S]

Each notebook runs in a fresh kernel with its own working folder inside the output
folder (so the repository stays clean). A notebook that fails is reported, its
partly executed copy is kept for reading, and the run goes on with the next one.
Every selected notebook is read before the first one runs: one that cannot be read (not
valid JSON, e.g. a merge-conflict marker; not a notebook) is named at the start, reported
as failed with the reason, and the others still run. The exit status is non-zero when
any notebook failed.

Results: a notebook publishes how its models did as display_data outputs with the MIME
type ``application/vnd.lessons-results+json`` whose value is ``{"results": [row, ...]}``,
each row ``{"what": str, "model": number, "baseline": number, "better": "lower"|"higher"}``
(several such outputs are concatenated in order). The runner collects them from the
executed notebook into ``results.json`` (per notebook, ``results`` and the number of
``malformed_results`` it dropped) and shows them in ``index.html``, each row marked
"beats" or "loses" (or "ties") against its baseline; a row with ``"expected": "loses"`` that loses is
marked as the loss the lesson expects, never as a win, and a ``spread`` shows as "value ± spread".

The course site: when the notebooks have run, the same run folder gets ``run.json`` (profile,
release, commit, date) and ``site/``, a static site of the executed lessons built by
``course_tools.site`` (MkDocs Material + mkdocs-jupyter, offline); when Chromium is installed it
is then opened headless (``course_tools.site.check``): ``site-check.json`` and screenshots of the
home page, a lesson and an exercise land beside it. ``--no-site`` skips both.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import html
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from course_tools import repo_root
from lessons_lib.files import atomic_write
from lessons_lib.runtime import PROFILE_ENV, get_profile
from lessons_lib.tables import significant

RESULTS_MIME = "application/vnd.lessons-results+json"
ROW_KEYS = {"what", "model", "baseline", "better"}
OPTIONAL_ROW_KEYS = {"spread", "expected"}  # lessons_lib.tables.result_row writes both


@dataclass
class Result:
    name: str
    ok: bool
    seconds: float
    error: str = ""
    results: list = field(default_factory=list)
    malformed_results: int = 0


def _finite_number(x) -> bool:
    return type(x) in (int, float) and math.isfinite(x)


def valid_row(row) -> bool:
    """A results row exactly as the contract says: the four required keys, optionally ``spread``
    (None or a finite number >= 0) and ``expected`` ('beats' or 'loses'), nothing else."""
    if not (isinstance(row, dict) and ROW_KEYS <= set(row) <= ROW_KEYS | OPTIONAL_ROW_KEYS):
        return False
    spread_ok = row.get("spread") is None or (_finite_number(row["spread"]) and row["spread"] >= 0)
    return (isinstance(row["what"], str) and 0 < len(row["what"].strip()) <= 200
            and _finite_number(row["model"]) and _finite_number(row["baseline"])
            and row["better"] in ("lower", "higher") and spread_ok
            and row.get("expected", "beats") in ("beats", "loses"))


def collect_results(nb) -> tuple[list[dict], int]:
    """(the valid results rows a notebook published, in order; how many malformed ones were dropped)."""
    rows, bad = [], 0
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if output.get("output_type") != "display_data" or RESULTS_MIME not in output.get("data", {}):
                continue
            value = output["data"][RESULTS_MIME]
            if isinstance(value, str):  # some front ends store JSON MIME data as text
                try:
                    value = json.loads(value)
                except ValueError:
                    value = None
            found = value.get("results") if isinstance(value, dict) else None
            if not isinstance(found, list):
                bad += 1
                continue
            for row in found:
                if valid_row(row):
                    rows.append({k: row[k] for k in ("what", "model", "baseline", "better")}
                                | {"spread": row.get("spread"), "expected": row.get("expected", "beats")})
                else:
                    bad += 1
    return rows, bad


def verdict(row: dict) -> str:
    """'beats', 'loses' or 'ties' (the model against its baseline)."""
    if row["model"] == row["baseline"]:
        return "ties"
    lower_wins = row["model"] < row["baseline"]
    return "beats" if lower_wins == (row["better"] == "lower") else "loses"


def find_notebooks(folder: Path, only: str | None = None) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"Notebook folder '{folder}' does not exist.")
    if only is not None and not only.strip():
        raise ValueError(f"--only {only!r} is empty, which would select every notebook. Give part of a "
                         "notebook's name (e.g. --only 01), or leave --only out to run them all.")
    found = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if only is not None:
        found = [p for p in found if fnmatch.fnmatch(p.name, f"*{only}*")]
    if not found:
        raise ValueError(f"No notebooks in '{folder}'" + (f" matching '{only}'." if only else "."))
    return found


def read_notebook(path: Path):
    """(the notebook, "") or (None, why it cannot run): read before any notebook runs."""
    import nbformat

    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        return None, f"cannot be read ({err.strerror or err})"
    except UnicodeDecodeError:
        return None, "is not UTF-8 text, so not a notebook"
    try:
        raw = json.loads(text)
    except ValueError as err:
        marker = next((i for i, line in enumerate(text.splitlines(), 1)
                       if line.startswith(("<<<<<<< ", "=======", ">>>>>>> "))), None)
        if marker is not None:
            return None, (f"is not valid JSON: it holds a git merge-conflict marker on line {marker}; "
                          "resolve the conflict and commit the notebook")
        return None, f"is not valid JSON ({str(err)[:80]}); restore it from git or re-save it in Jupyter"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return None, "is JSON but not a notebook (no list of cells)"
    try:
        return nbformat.reads(text, as_version=4), ""
    except Exception as err:  # nbformat's errors vary with the damage (ValidationError, TypeError...)
        return None, f"is not a readable notebook ({type(err).__name__}: {str(err)[:80]})"


def _broken_page(out: Path, name: str, why: str) -> None:
    atomic_write(out / f"{name}.html", f"<!doctype html><html><head><meta charset='utf-8'><title>"
                                       f"{html.escape(name)}</title></head><body><h1>{html.escape(name)}"
                                       f"</h1><p>Not run: the notebook {html.escape(why)}.</p></body></html>\n")


def run_notebook(path: Path, out: Path, timeout: int, nb=None) -> Result:
    """Execute one notebook; write OUT/<name>.ipynb and OUT/<name>.html whatever happens."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbconvert import HTMLExporter

    if nb is None:
        nb, why = read_notebook(path)
        if nb is None:
            _broken_page(out, path.stem, why)
            return Result(path.stem, False, 0.0, f"not run: the notebook {why}")
    workdir = out / "files" / path.stem
    workdir.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    error = ""
    try:
        # The kernel's own chatter goes to a log beside the notebook's files, so the
        # console keeps one progress line per notebook.
        # Figures must be drawn inline into the pages: a non-interactive MPLBACKEND
        # (Agg, as tests use) would swallow them.
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        env["LESSONS_CLAIMS"] = "strict"  # a sentence its run contradicts fails the notebook (tables.claim)
        with open(workdir / "kernel.log", "w") as kernel_log:
            client.execute(stderr=kernel_log, env=env)
    except CellExecutionError as err:
        error = _first_line_of(err)
    except (CellTimeoutError, TimeoutError):
        error = f"a cell ran longer than {timeout} s"
    except DeadKernelError as err:
        error = f"the kernel died ({err}); out of memory?"
    seconds = time.perf_counter() - start
    atomic_write(out / f"{path.stem}.ipynb", nbformat.writes(nb))
    body, _ = HTMLExporter().from_notebook_node(nb)
    atomic_write(out / f"{path.stem}.html", body)
    rows, bad = collect_results(nb)
    return Result(path.stem, not error, seconds, error, rows, bad)


def _first_line_of(err: Exception) -> str:
    lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(err)).splitlines() if ln.strip()]  # no colours
    tail = [ln for ln in lines if "Error" in ln or "Exception" in ln]
    return (tail[-1] if tail else (lines[-1] if lines else repr(err)))[:300]


MARKS = {"beats": "&#10003; beats the baseline", "loses": "&#10007; loses to the baseline",
         "ties": "= ties with the baseline", "expected": "&#10007; loses, as the lesson expects",
         "within": "~ beats the baseline by less than the spread (not significant)"}


def _mark(row: dict) -> str:
    v = verdict(row)
    if v == "loses" and row.get("expected") == "loses":
        return MARKS["expected"]
    return MARKS["within"] if v == "beats" and not significant(row) else MARKS[v]


def _css(row: dict) -> str:
    return {MARKS["expected"]: "expected", MARKS["within"]: "within"}.get(_mark(row), verdict(row))


def _model_text(row: dict) -> str:
    return f"{row['model']:.4g}" + (f" &plusmn; {row['spread']:.2g}" if row.get("spread") is not None else "")


def _results_html(r: Result) -> str:
    if not r.results and not r.malformed_results:
        return ""
    items = "".join(
        f"<tr class='{_css(row)}'><td>{html.escape(row['what'])}</td><td>{_model_text(row)}</td>"
        f"<td>{row['baseline']:.4g}</td><td>{row['better']} is better</td><td>{_mark(row)}</td></tr>"
        for row in r.results)
    note = (f"<p class='bad'>{r.malformed_results} malformed results row(s) dropped (each needs what, model, "
            "baseline, better).</p>" if r.malformed_results else "")
    return (f"<tr><td></td><td colspan='4'><table class='results'><tr><th>what</th><th>model</th>"
            f"<th>baseline</th><th></th><th></th></tr>{items}</table>{note}</td></tr>")


def write_index(out: Path, results: list[Result], profile: str, site_note: str = "") -> None:
    rows = "\n".join(
        f"<tr><td><a href='{html.escape(r.name)}.html'>{html.escape(r.name)}</a></td>"
        f"<td>{'ok' if r.ok else 'FAILED'}</td><td>{r.seconds:.0f} s</td>"
        f"<td>{html.escape(r.error)}</td><td>"
        + (f"<a href='{html.escape(r.name)}.ipynb'>notebook</a>" if (out / f"{r.name}.ipynb").exists() else "")
        + "</td></tr>"
        + _results_html(r)
        for r in results)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Course run</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em 1em;text-align:left}}
.beats td:last-child{{color:#080}} .loses td:last-child{{color:#b00;font-weight:bold}}
.expected td:last-child{{color:#8a5a00}} .within td:last-child{{color:#666;font-style:italic}}
.bad{{color:#b00}}</style>
</head>
<body><h1>Image transformation with deep learning: executed notebooks</h1>
<p>Profile <b>{profile}</b>, run on {stamp}. {sum(r.ok for r in results)} of {len(results)} notebooks
ran cleanly.</p>
{site_note}
<table><tr><th>notebook</th><th>status</th><th>time</th><th>error</th><th>source</th></tr>
{rows}
</table></body></html>
"""
    atomic_write(out / "index.html", page)
    atomic_write(out / "results.json", json.dumps([r.__dict__ for r in results], indent=2))


def _check_kernel() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        raise ValueError("No Jupyter kernel named python3 is installed, so no notebook can run. Install "
                         "one (pip install ipykernel) and run again; nothing was run.") from None


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--timeout must be a whole number of seconds, got "
                                         f"{text!r}") from None
    if not 1 <= value <= 7 * 86400:
        raise argparse.ArgumentTypeError(f"--timeout must be between 1 and 604800 seconds, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.course",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: course_output/run-<date-time>)")
    parser.add_argument("--notebooks", type=Path, default=repo_root() / "notebooks",
                        help="folder of notebooks to run (default: %(default)s)")
    parser.add_argument("--profile", choices=["fast", "full"], default=None,
                        help=f"override the detected profile (same as {PROFILE_ENV}=...)")
    parser.add_argument("--only", default=None,
                        help="run only notebooks whose name contains this (glob characters work too)")
    parser.add_argument("--timeout", type=_seconds, default=None,
                        help="seconds one cell may run (default: 600 fast, 7200 full)")
    parser.add_argument("--overwrite", action="store_true",
                        help="allow writing into a non-empty --out folder")
    parser.add_argument("--no-site", action="store_true",
                        help="skip the course site (OUT/site/) and its browser check")
    args = parser.parse_args(argv)

    if args.profile:
        os.environ[PROFILE_ENV] = args.profile  # kernels inherit it
    try:
        profile = get_profile()
    except ValueError as err:  # LESSONS_PROFILE set to something else
        print(f"error: {err} Or pass --profile fast or --profile full. Nothing was run.", file=sys.stderr)
        return 2
    timeout = args.timeout or (600 if profile == "fast" else 7200)
    try:
        notebooks = find_notebooks(args.notebooks, args.only)
        _check_kernel()
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or Path("course_output") / _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if out.exists() and not out.is_dir():
        print(f"error: --out '{out}' is a file, not a folder. Give a folder.", file=sys.stderr)
        return 2
    if out.resolve() == args.notebooks.resolve():
        print(f"error: --out '{out}' is the notebook folder; the executed copies would replace the "
              "notebooks. Choose another folder.", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        print(f"error: '{out}' already holds results. Choose another --out, or add --overwrite "
              f"to replace them.", file=sys.stderr)
        return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / ".write-check", "")
        (out / ".write-check").unlink()
    except OSError as err:
        print(f"error: cannot write to '{out}' ({err.strerror or err}); nothing was run. Choose a folder "
              "you can write to.", file=sys.stderr)
        return 2

    started = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    read = {path: read_notebook(path) for path in notebooks}  # every one, before hours of running
    print(f"Running {len(notebooks)} notebooks, profile '{profile}', into {out}/", flush=True)
    broken = [(path, why) for path, (nb, why) in read.items() if nb is None]
    for path, why in broken:
        print(f"  {path.name} cannot run and is reported as failed: it {why}.", flush=True)
    results = []
    for i, path in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {path.name} ...", end=" ", flush=True)
        nb, why = read[path]
        if nb is None:
            _broken_page(out, path.stem, why)
            result = Result(path.stem, False, 0.0, f"not run: the notebook {why}")
        else:
            try:
                result = run_notebook(path, out, timeout, nb)
            except Exception as err:  # one notebook's failure must not end the run
                result = Result(path.stem, False, 0.0, f"the runner failed on it: {type(err).__name__}: "
                                                       f"{str(err)[:200]}")
        results.append(result)
        print(f"{'ok' if result.ok else 'FAILED'} in {result.seconds:.0f} s"
              + (f": {result.error}" if result.error else ""), flush=True)
        write_index(out, results, profile)  # a readable index even if the run is stopped
    failed = [r.name for r in results if not r.ok]
    print(f"Done: {len(results) - len(failed)} of {len(results)} notebooks ran cleanly. "
          f"Open {out / 'index.html'}" + (f". Failed: {', '.join(failed)}" if failed else "."), flush=True)
    site_ok = True
    if not args.no_site:
        site_ok = publish_site(out, results, profile, started)
    return 1 if failed or not site_ok else 0


def publish_site(out: Path, results: list[Result], profile: str, started: str) -> bool:
    """OUT/run.json, OUT/site/ and, with Chromium, its browser check; False when either failed."""
    from course_tools.site import SiteError, build_site, run_facts, search_target
    from course_tools.site.check import SiteCheckError, check_site, find_chromium

    run = run_facts(repo_root(), profile, started)
    atomic_write(out / "run.json", json.dumps(run, indent=2))
    print("Building the course site ...", end=" ", flush=True)
    try:
        built = build_site(out, run=run)
    except SiteError as err:
        print(f"FAILED: {err}", flush=True)
        write_index(out, results, profile, f"<p class='bad'>The course site could not be built: "
                                           f"{html.escape(str(err))}</p>")
        return False
    print(f"{built.pages} pages, {built.megabytes:.1f} MB in {built.seconds:.0f} s: {built.site / 'index.html'}",
          flush=True)
    note = "<p><b><a href='site/index.html'>The course site of this run</a></b>"
    chromium = find_chromium()
    if chromium is None:
        print("  Chromium is not installed, so the site was not opened in a browser (apt-get install chromium).")
        write_index(out, results, profile, note + "</p>")
        return True
    print("Opening it in headless Chromium ...", end=" ", flush=True)
    try:
        report = check_site(built.site, out / "site-check", chromium=chromium, **search_target(built))
    except SiteCheckError as err:
        print(f"FAILED: {err}", flush=True)
        why = html.escape(str(err))
        write_index(out, results, profile, f"{note}</p><p class='bad'>Browser check failed: {why}</p>")
        return False
    problems = report["problems"]
    print(f"{'ok' if not problems else f'{len(problems)} problem(s)'}: {report['pages']} pages, "
          f"{report['links_checked']} links, {report['requests']} requests "
          f"({len(report['off_machine'])} off the machine) in {report['seconds']:.0f} s; screenshots in "
          f"{out / 'site-check'}/", flush=True)
    for problem in problems[:20]:
        print(f"  {problem}", flush=True)
    verdict_text = "no problems" if not problems else f"{len(problems)} problems, see site-check/report.json"
    write_index(out, results, profile, f"{note} (checked in headless Chromium: {verdict_text}; "
                                       "<a href='site-check/home.png'>screenshot</a>).</p>")
    return not problems



if __name__ == "__main__":
    sys.exit(main())
