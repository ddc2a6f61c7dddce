"""``vhpc paper-figures`` (``make paper-figures``): every stage notebook per environment, then the report.

Notebooks run through papermill's Python API in this one process (a kernel per
notebook, no new interpreter per call); executed copies go to
``notebooks/executed/<campaign>/`` and never over the sources. Without
``rerun`` nothing is measured: the stage notebooks show the campaign's stored
runs. ``python -m vhpclib.pipeline`` is an alias of ``vhpc paper-figures``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .fsutil import atomic_write
from . import paths
from .config import load_inventory
from .exceptions import NotebookFailed

STAGE_NOTEBOOKS = ("01-microbenchmarks", "02-single-node", "03-scaling")
SUMMARY_NOTEBOOKS = ("04-cloud-comparison", "05-paper-figures")
REPORT_NOTEBOOK = "05-paper-figures"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def execute(name: str, out: Path, parameters: dict) -> Path:
    """Execute one notebook with papermill into ``out``."""
    import papermill

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(paths.NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=parameters,
                                   kernel_name="python3", progress_bar=False, cwd=str(paths.NOTEBOOKS))
    except papermill.PapermillExecutionError as exc:
        raise NotebookFailed(f"{exc.ename}: {exc.evalue} (executed copy: {out})",
                             file=f"notebooks/{name}.ipynb") from None
    return out


def to_html(notebook: Path, target: Path) -> Path:
    """Convert an executed notebook to one HTML page (code hidden: a report, not a listing)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="vhpc-report", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    return atomic_write(target, body)


def run_pipeline(inventory: Path, campaign: str, *, rerun: bool = False, environments: list[str] | None = None,
                 log=print, progress: bool = False) -> Path:
    """Every stage per environment, then the cloud comparison and the paper figures; returns report.html."""
    inv = load_inventory(paths.project_path(inventory))
    envs = environments or list(inv.environments)
    for name in envs:
        inv.environment(name)
    executed = paths.EXECUTED_NOTEBOOKS / campaign
    rel_inventory = str(paths.project_path(inventory).resolve())
    for env in envs:
        for nb in STAGE_NOTEBOOKS:
            t0 = time.perf_counter()
            execute(nb, executed / env / f"{nb}.ipynb",
                    {"inventory": rel_inventory, "environment": env, "campaign": campaign, "measure": rerun,
                     "progress": progress, "write_figures": False})  # 05 writes every figure at once
            log(f"[{env}] {nb}: {time.perf_counter() - t0:.1f} s")
    for nb in SUMMARY_NOTEBOOKS:
        t0 = time.perf_counter()
        execute(nb, executed / f"{nb}.ipynb", {"inventory": rel_inventory, "campaign": campaign})
        log(f"{nb}: {time.perf_counter() - t0:.1f} s")
    report = to_html(executed / f"{REPORT_NOTEBOOK}.ipynb", paths.FIGURES / "report.html")
    log(f"report: {report}")
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m vhpclib.pipeline [--inventory ...] [--campaign ...] [--rerun]``: ``vhpc paper-figures``."""
    from .cli import main as cli_main

    return cli_main(["paper-figures", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
