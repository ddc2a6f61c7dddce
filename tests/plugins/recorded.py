"""Environment kind ``recorded``: plain hosts whose every command runs under a wrapper that logs it.

A real provider written outside vhpclib and registered by the test that imports this module
(``tests/test_plugin_provider.py``): its inventory section names the log, ``wrap`` puts
``recorded-wrapper`` (beside this file) in front of every command vHPC runs in the environment
(MPI launches, fingerprints, probes), its fingerprint probe sees the wrapper from inside,
``run_facts`` says so in every run record, ``skip_reason``
refuses more ranks per node than the section allows, and ``up``/``down`` mark the log.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vhpclib.providers import EnvironmentProvider, register_provider

WRAPPER = Path(__file__).resolve().with_name("recorded-wrapper")


class RecordedSection(BaseModel):
    """Where the wrapper writes, and what the layer refuses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log: Path = Field(description="File the wrapper appends one line to for every command it runs.")
    max_ranks_per_node: int | None = Field(None, ge=1, description="More MPI ranks per node are skipped, with "
                                           "the reason; none: no limit.")


@register_provider
class Recorded(EnvironmentProvider):
    name = "recorded"
    Section = RecordedSection
    summary = "test: hosts whose every command runs under a wrapper that appends a line to a log"
    vmms = {"recorded": ()}
    # positive evidence from inside: the wrapper sets this variable for what it runs
    layer_probes = (("layer_recorded", '[ -n "${VHPC_RECORDED_LAYER:-}" ]', 'printf "%s\\n" "$VHPC_RECORDED_LAYER"'),)

    def detected(self, evidence: dict[str, str | None]) -> bool:
        return bool(evidence.get("layer_recorded"))

    def vmm(self, env: Any) -> str:
        return "recorded"

    def layer_findings(self, env: Any, facts: dict[str, Any]) -> list[str]:
        return []  # the wrapper is not a hypervisor: nothing the host's detection could confirm

    def wrap(self, env: Any, host: Any, command: str) -> str:
        log = self.section(env).log
        return " ".join(shlex.quote(str(a)) for a in (WRAPPER, log, host.label, command))

    def run_facts(self, ctx: Any, hosts: list) -> dict[str, Any]:
        log = self.section(ctx.env).log
        lines = log.read_text().count("\n") if log.exists() else 0
        return {"wrapped_by": WRAPPER.name, "log_lines_before_run": lines}

    def skip_reason(self, env: Any, nodes: int, ranks_per_node: int) -> str | None:
        limit = self.section(env).max_ranks_per_node
        if limit is not None and ranks_per_node > limit:
            return f"the recorded layer runs at most {limit} rank(s) per node, this point needs {ranks_per_node}"
        return None

    def up(self, inventory: Any, name: str, log: Any) -> bool:
        path = self.section(inventory.environment(name)).log
        if path.exists():
            return False
        path.write_text("up\n")
        log(f"recorded: {path} started")
        return True

    def down(self, inventory: Any, name: str, log: Any) -> None:
        path = self.section(inventory.environment(name)).log
        with open(path, "a") as fh:
            fh.write("down\n")
