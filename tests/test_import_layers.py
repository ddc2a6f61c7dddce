"""The import graph of vhpclib as a specification: no module imports one that (indirectly) imports it back.

``make lint`` runs import-linter's contracts from pyproject.toml (layers, acyclic siblings), which leave out
imports under ``if TYPE_CHECKING:``. This test counts those too, module by module: a cycle that only type
hints close is still two modules that cannot be understood one without the other.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]



def import_cycles(graph: grimp.ImportGraph) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative: the graph has ~100 modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("vhpclib", cache_dir=None)


def test_no_import_cycle_at_all(graph):
    assert [sorted(c) for c in import_cycles(graph)] == []


def test_the_stage_drivers_and_the_cli_are_out_of_every_cycle(graph):
    in_cycles = set().union(*import_cycles(graph))
    for module in ("vhpclib.stages.loop", "vhpclib.stages.adaptive", "vhpclib.stages.interleave",
                   "vhpclib.stages.driver", "vhpclib.stages.context", "vhpclib.stages.recovery", "vhpclib.cli",
                   "vhpclib.notebook_runner", "vhpclib.executor", "vhpclib.names", "vhpclib.registry"):
        assert module not in in_cycles


def test_the_cycle_finder_finds_a_cycle_it_is_given():
    g = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        g.add_import(importer=a, imported=b)
    assert import_cycles(g) == [{"p.a", "p.b", "p.c"}]


def test_the_import_contract_is_kept_and_can_break(tmp_path):
    """``lint-imports`` passes on the tree, and fails when a lower layer imports a higher one."""
    lint = Path(sys.executable).with_name("lint-imports")
    ok = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # A contract putting the store above the stages: the stages' real imports of the store must break it.
    inverted = tmp_path / "inverted.toml"
    inverted.write_text('[tool.importlinter]\nroot_package = "vhpclib"\n\n[[tool.importlinter.contracts]]\n'
                        'name = "store above stages"\ntype = "layers"\ncontainers = ["vhpclib"]\n'
                        'layers = ["store", "stages"]\n')
    bad = subprocess.run([str(lint), "--no-cache", str(inverted)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 1 and "store above stages BROKEN" in bad.stdout, bad.stdout + bad.stderr
    assert "vhpclib.stages" in bad.stdout and "is not allowed to import vhpclib.store" in bad.stdout
