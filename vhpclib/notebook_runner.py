"""``vhpc paper-figures`` / ``vhpc figures`` (``make paper-figures``): measure if asked, then the report.

Notebooks run through papermill's Python API in this one process; executed
copies go to ``notebooks/executed/<campaign>/`` and never over the sources.

* Without ``rerun`` nothing is measured and only the report notebook (05) runs:
  the stage notebooks would only redraw what 05 draws, so they are not run
  (one kernel start instead of five). 05 writes every figure and the report to
  ``figures/<campaign>/``.
* With ``rerun`` each stage notebook measures in each environment (its per-run
  progress bar streamed to the terminal), then 05 builds the report. A
  re-measure that is interrupted is resumed by the next ``rerun`` (see
  ``campaigns.rerun_campaign``).

A failing notebook raises ``NotebookFailed`` naming the notebook, the cell and
the error in one line; the executed copy is kept. (The stage pipeline itself is
``vhpclib.stages``; this module only runs notebooks, and never imports the CLI.)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import paths
from .exceptions import NotebookFailed
from .fsutil import atomic_write

# nbformat imports jsonschema, whose format checkers import rfc3987_syntax when it is installed (a
# JupyterLab dependency); that module compiles 39 grammars at import, ~3 s on a 2-core machine, for an
# "iri" format no notebook schema uses. Marking it absent (only if nothing imported it yet) skips that.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

STAGE_NOTEBOOKS = ("01-microbenchmarks", "02-single-node", "03-scaling")
REPORT_NOTEBOOK = "05-paper-figures"
TEMPLATES = Path(__file__).resolve().parent / "templates"
LATEST = "latest"


def _kernel_manager_class():
    """A kernel manager on IPC sockets in a private folder: no TCP port, no 'running over TCP' warning."""
    from jupyter_client.manager import AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            self._ipc_dir = tempfile.mkdtemp(prefix="vhpc-kernel-")
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(self._ipc_dir, "kernel"))
            super().__init__(**kwargs)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                shutil.rmtree(self._ipc_dir, ignore_errors=True)

        cleanup_resources = _async_cleanup_resources  # nbclient calls this name on async managers

    return IpcKernelManager


def _cell_of(exc: Any) -> str:
    lines = [line for line in str(getattr(exc, "source", "")).splitlines() if line.strip()]
    first = lines[0].strip() if lines else ""
    first = first if len(first) <= 60 else first[:57] + "..."
    number = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", "?")
    return f"cell {number}" + (f" ({first})" if first else "")


def execute(name: str, out: Path, parameters: dict, *, cell_progress: bool = False,
            stream_stderr: bool = False) -> Path:
    """Execute one notebook with papermill into ``out``; a failure is one line (notebook, cell, cause).

    ``cell_progress`` shows a bar over the notebook's cells; ``stream_stderr`` copies the kernel's
    stderr (e.g. a stage's per-run progress bar) to ours as it comes.
    """
    import papermill

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(paths.NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=parameters, kernel_name="python3",
            progress_bar={"desc": name, "leave": False} if cell_progress else False,
            request_save_on_cell_execute=False,  # saved at the end (and every 30 s), not after every cell
            stderr_file=sys.stderr if stream_stderr else None,
            cwd=str(paths.NOTEBOOKS), kernel_manager_class=_kernel_manager_class(), shutdown_kernel="immediate")
    except papermill.PapermillExecutionError as exc:
        cause = f"{exc.ename}: {exc.evalue}".replace("\n", " ")
        failed = NotebookFailed(f"{_cell_of(exc)} raised {cause} (executed copy kept: {out})",
                                file=f"notebooks/{name}.ipynb")
        if exc.ename in _input_error_names():
            failed.exit_code = 2  # the notebook refused bad input: the same exit code as the CLI gives it
        raise failed from None
    return out


def _input_error_names() -> set[str]:
    from .exceptions import InputError

    names, todo = set(), [InputError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


def to_html(notebook: Path, target: Path, title: str = "") -> Path:
    """Convert an executed notebook to one HTML page (code hidden: a report, not a listing)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="vhpc-report", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    nb = nbformat.read(notebook, as_version=4)
    if title:
        nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    return atomic_write(target, body)


def point_latest(campaign: str) -> None:
    """``figures/latest`` -> the campaign whose report was built last (replaced atomically)."""
    link = paths.FIGURES / LATEST
    tmp = paths.FIGURES / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(campaign, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)  # a filesystem without symlinks: the per-campaign report is what counts


def measure(inventory: Path, campaign: str, environments: list[str], *, progress: bool, allow_mixed: bool,
            log: Callable[[str], None]) -> None:
    """Every stage notebook in every environment, measuring (stored runs are reused: a resume)."""
    executed = paths.EXECUTED_NOTEBOOKS / campaign
    for env in environments:
        for nb in STAGE_NOTEBOOKS:
            t0 = time.perf_counter()
            log(f"[{env}] {nb}: measuring ...")
            execute(nb, executed / env / f"{nb}.ipynb",
                    {"inventory": str(inventory), "environment": env, "campaign": campaign, "measure": True,
                     "progress": progress, "write_figures": False, "allow_mixed": allow_mixed,
                     "allow_committed": True},  # the campaign was chosen (and checked) by the caller
                    stream_stderr=progress)
            log(f"[{env}] {nb}: {time.perf_counter() - t0:.1f} s")


def build_report(campaign: str, *, progress: bool = False, log: Callable[[str], None] = print) -> Path:
    """Notebook 05 (every figure of the campaign, written to figures/<campaign>/), then report.html beside them.

    PDF/SVG/PNG are rendered here, not in the kernel: when nothing is cached yet, Chromium starts
    while the kernel starts and builds the figures, and renders while the report is converted.
    A static export failure is raised after the report and the HTML figures are written.
    """
    from .exceptions import VhpcError
    from .figures.export import DEFAULT_FORMATS, StaticExport, export_session, pending

    t0 = time.perf_counter()
    outdir = paths.figures_dir(campaign)
    failure: VhpcError | None = None
    with export_session() as session:
        if not _cache_warm():
            try:
                session.start()
            except VhpcError as exc:
                failure = exc
        executed = paths.EXECUTED_NOTEBOOKS / campaign / f"{REPORT_NOTEBOOK}.ipynb"
        key = inputs_key(campaign)
        if reusable(executed, key, outdir):
            log(f"{REPORT_NOTEBOOK}: inputs unchanged, executed copy reused")
        else:
            _forget_inputs(executed)
            execute(REPORT_NOTEBOOK, executed, {"campaign": campaign, "static_export": False},
                    cell_progress=progress)
            atomic_write(_inputs_file(executed), key + "\n", durable=False)
        export = StaticExport(pending(outdir), outdir, [f for f in DEFAULT_FORMATS if f != "html"])
        if failure is None:
            try:
                export.start(session)
            except VhpcError as exc:
                failure = exc
        report = to_html(executed, outdir / "report.html", f"vHPC report: campaign {campaign}")
        point_latest(campaign)
        if failure is None:
            try:
                export.finish(session)
            except VhpcError as exc:
                failure = exc
    log(f"{REPORT_NOTEBOOK}: {time.perf_counter() - t0:.1f} s")
    if failure is not None:
        raise failure
    return report


def inputs_key(campaign: str) -> str:
    """A hash of everything notebook 05's outputs depend on: the notebook, vhpclib's code (not the report
    template: it only shapes the HTML), the reference data, the library versions, and the campaign's raw
    files (names, sizes, modification times)."""
    import hashlib
    from importlib import metadata

    digest = hashlib.sha256()
    sources = [paths.NOTEBOOKS / f"{REPORT_NOTEBOOK}.ipynb",
               *sorted(Path(__file__).resolve().parent.rglob("*.py")),
               *sorted(paths.REFERENCE.rglob("*.csv"))]
    for source in sources:
        digest.update(str(source.name).encode() + b"\0" + source.read_bytes())
    for package in ("plotly", "pandas", "numpy", "kaleido"):
        try:
            digest.update(f"{package} {metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            pass
    raw = paths.RAW / campaign
    for path in sorted(raw.rglob("*")) if raw.is_dir() else []:
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(raw).parts):
            st = path.stat()
            digest.update(f"{path.relative_to(raw)} {st.st_size} {st.st_mtime_ns}".encode())
    return digest.hexdigest()


def _inputs_file(executed: Path) -> Path:
    return executed.with_suffix(".inputs")


def _forget_inputs(executed: Path) -> None:
    _inputs_file(executed).unlink(missing_ok=True)  # a failed run must never look reusable


def reusable(executed: Path, key: str, outdir: Path) -> bool:
    """The executed report notebook can be converted again as it is: same inputs, its figure files still there."""
    from .figures.export import PLOTLYJS, pending

    try:
        if _inputs_file(executed).read_text().strip() != key or not executed.is_file():
            return False
    except OSError:
        return False
    figures = pending(outdir)
    return bool(figures) and (outdir / PLOTLYJS).is_file() and all((outdir / f"{n}.html").is_file() for n in figures)


def _cache_warm() -> bool:
    """Whether static exports were cached before (then Chromium starts only if a figure changed)."""
    try:
        return any(paths.export_cache().iterdir())
    except OSError:
        return False


def notebook_path(name: str) -> Path:
    """A notebook by number (``02``) or name (``02-single-node``, with or without ``.ipynb``)."""
    from .exceptions import InputError

    stem = name.removesuffix(".ipynb")
    found = sorted(p for p in paths.NOTEBOOKS.glob("[0-9]*.ipynb") if p.stem == stem or p.stem.split("-")[0] == stem)
    if len(found) != 1:
        have = ", ".join(p.stem for p in sorted(paths.NOTEBOOKS.glob("[0-9]*.ipynb")))
        raise InputError(f"no notebook {name!r} (have: {have})", key="NB")
    return found[0]


def notebook_parameters(path: Path) -> list[str]:
    """Names the notebook's ``parameters`` cell assigns (only those are passed, so none is ignored silently)."""
    import json

    for cell in json.loads(path.read_text())["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return [line.split("=", 1)[0].strip() for line in "".join(cell["source"]).splitlines()
                    if "=" in line and not line.lstrip().startswith("#")]
    return []


def run_notebook(name: str, given: dict[str, Any], extra: list[str], *, progress: bool = True) -> Path:
    """``make notebook`` / ``vhpc notebook``: one notebook with the parameters it has; the executed copy's path.

    ``extra`` holds ``name=value`` pairs (values read as YAML); a name the notebook does not have is an error.
    """
    import yaml

    from .exceptions import InputError

    path = notebook_path(name)
    known = notebook_parameters(path)
    params = {k: v for k, v in given.items() if k in known}
    for item in extra:
        key, sep, value = item.partition("=")
        key = key.strip()
        if sep and key not in known and "options" in known and _workload_parameter(key):
            params.setdefault("options", {})[key] = yaml.safe_load(value)  # a workload's own (its Params)
            continue
        if not sep or key not in known:
            raise InputError(f"{item!r}: expected name=value with a parameter of {path.name} ({', '.join(known)}, "
                             "or a workload's own)", key="param")
        params[key] = yaml.safe_load(value)
    measures = "measure" in known and params.get("measure", True)
    folder = params.get("campaign") or "scratch"
    out = paths.EXECUTED_NOTEBOOKS / folder / (params.get("environment") or "") / path.name
    execute(path.stem, out, params, cell_progress=progress and not measures, stream_stderr=progress and measures)
    return out


def _workload_parameter(name: str) -> bool:
    """Whether a registered workload declares ``name`` in its ``Params`` (a notebook passes it in ``options``)."""
    from .workloads import WORKLOADS

    return any(name in w.Params.model_fields for _, w in WORKLOADS.items())


def run_pipeline(inventory: Path | None, campaign: str, *, rerun: bool = False,
                 environments: list[str] | None = None, log: Callable[[str], None] = print,
                 progress: bool = False, allow_mixed: bool = False) -> Path:
    """Measure (``rerun``) every stage per environment, then the report; returns figures/<campaign>/report.html."""
    if rerun:
        from .config import load_inventory

        inv_path = paths.project_path(inventory or paths.DEFAULT_INVENTORY).resolve()
        inv = load_inventory(inv_path)
        envs = environments or list(inv.environments)
        for name in envs:
            inv.environment(name)
        from .providers import environments_up

        for env in envs:  # what an environment's provider starts runs only while that environment is measured
            with environments_up(inv, [env], log=log):
                measure(inv_path, campaign, [env], progress=progress, allow_mixed=allow_mixed, log=log)
    report = build_report(campaign, progress=progress, log=log)
    log(f"report: {report}")
    return report
