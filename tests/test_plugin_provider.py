"""An environment kind added from outside vhpclib: ``tests/plugins/recorded.py``, registered by this test.

Real IMB PingPong (impi-rt) runs through ``vhpc run microbench`` in a ``recorded:`` environment, every
command under the plugin's wrapper; ``vhpc tables`` and ``vhpc figures`` build the tables and the report
from those runs, with no vhpclib module edited. The built-in kinds (plain hosts, ``vm:`` guests) go
through the same registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from vhpclib.config import parse_inventory
from vhpclib.exceptions import InventoryError
from vhpclib.providers import PROVIDERS, environments_up, is_emulation, provider_for, system_packages

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
# The vhpc CLI in a fresh process, with the plugin imported first (how an outside plugin is loaded).
VHPC = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); import plugins.recorded; "
        "from vhpclib.cli import main; sys.exit(main(sys.argv[1:]))", str(TESTS)]


@pytest.fixture()
def recorded():
    """The plugin, registered for this test only."""
    sys.path.insert(0, str(TESTS))
    try:
        from plugins import recorded as module
    finally:
        sys.path.remove(str(TESTS))
    PROVIDERS.register_class(module.Recorded)
    yield module
    PROVIDERS.remove("recorded")


def _inventory(tmp_path: Path, **section) -> Path:
    path = tmp_path / "recorded.yml"
    path.write_text(yaml.safe_dump({"name": "recorded", "environments": {
        "rec": {"label": "rec", "description": "this machine, every command under a recording wrapper",
                "hosts": [{"name": "localhost", "local": True}],
                "recorded": {"log": str(tmp_path / "wrapper.log"), **section}}}}, sort_keys=False))
    return path


def _vhpc(args: list[str], tmp_path: Path, *, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "VHPC_DATA": str(tmp_path / "data"), "VHPC_FIGURES": str(tmp_path / "figures"),
           "VHPC_EXECUTED": str(tmp_path / "executed")}
    proc = subprocess.run(VHPC + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"vhpc {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


# ------------------------------------------------------------------ the registry

def test_built_in_kinds_are_found_by_name_and_an_environment_names_its_kind_by_its_section():
    assert {"host", "vm"} <= set(PROVIDERS.names())
    inv = parse_inventory("environments:\n  here:\n    hosts: [{local: true}]\n    label: here\n    baseline: true\n"
                          "  guest:\n    label: guest\n    vm: {name: g1, vcpus: 2}\n")
    assert inv.environment("here").kind == "host" and provider_for(inv.environment("here")).name == "host"
    guest = inv.environment("guest")
    assert guest.kind == "vm" and guest.section("vm").memory_mib == 4096  # enough for Intel MPI's shm segment
    assert provider_for(guest).emulation and is_emulation("qemu-tcg") and not is_emulation("kvm")
    assert system_packages(inv, ["here"]) == [] and "qemu-system-x86" in system_packages(inv)


def test_a_lazily_registered_name_is_known_before_its_module_is_imported():
    code = ("import sys; from vhpclib.providers import PROVIDERS; "
            "assert 'vm' in PROVIDERS.names() and 'vhpclib.providers.qemu' not in sys.modules; "
            "assert PROVIDERS.get('vm').Section.__name__ == 'VmSpec' and 'vhpclib.providers.qemu' in sys.modules; "
            "from vhpclib.config import parse_inventory; "
            "parse_inventory('environments: {e: {label: e, hosts: [{local: true}]}}'); "
            "assert 'vhpclib.launchers.slurm' not in sys.modules and 'vhpclib.vm.lifecycle' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_the_committed_inventories_load_unchanged_and_each_environment_has_a_registered_kind():
    from vhpclib.config import load_inventory

    kinds = {}
    for path in sorted((ROOT / "inventories").glob("*.yml")):
        for name, env in load_inventory(path).environments.items():
            kinds[(path.name, name)] = env.kind
    assert kinds[("host-and-guest.yml", "guest")] == "vm" and kinds[("host-and-guest.yml", "local")] == "host"
    assert kinds[("slurm-example.yml", "bmm")] == "host"  # a launcher's section is no environment kind
    assert set(kinds.values()) <= set(PROVIDERS.names())


def test_the_check_of_a_recorded_environment_fingerprints_inside_the_layer(recorded, tmp_path):
    from vhpclib.inventory_check import check_inventory

    inv = parse_inventory(_inventory(tmp_path).read_text())
    report = check_inventory(inv, None, None)
    [row] = report.rows
    assert row.answered and row.findings == [] and row.kernel
    assert (tmp_path / "wrapper.log").read_text().startswith("ran host=localhost")


def test_an_unknown_section_is_an_unknown_key_and_a_section_is_checked_by_its_providers_model():
    text = "environments:\n  e:\n    label: e\n    hosts: [{local: true}]\n    lxd: {image: x}\n"
    with pytest.raises(InventoryError) as err:
        parse_inventory(text, "inv.yml")
    assert str(err.value) == "inv.yml:5: environments.e.lxd: unknown key"
    with pytest.raises(InventoryError) as err:
        parse_inventory("environments:\n  e:\n    label: e\n    vm: {name: g1, vcpus: 2, accel: hvf}\n", "inv.yml")
    assert err.value.key == "environments.e.vm.accel" and err.value.line == 4 and "'hvf'" in str(err.value)


def test_a_registered_provider_owns_its_section_and_vmm_and_refuses_two_kinds(recorded, tmp_path):
    inv = parse_inventory(_inventory(tmp_path).read_text(), "recorded.yml")
    env = inv.environment("rec")
    assert env.kind == "recorded" and env.section("recorded").log == tmp_path / "wrapper.log"
    with pytest.raises(InventoryError) as err:
        parse_inventory(_inventory(tmp_path, max_ranks_per_node=0).read_text(), "recorded.yml")
    assert err.value.key == "environments.rec.recorded.max_ranks_per_node"
    two = _inventory(tmp_path).read_text().replace("    recorded:", "    vm: {name: g1, vcpus: 1}\n    recorded:")
    with pytest.raises(InventoryError) as err:
        parse_inventory(two, "recorded.yml")
    assert "one kind" in str(err.value)
    vmm = _inventory(tmp_path).read_text().replace("label: rec", "label: rec\n    vmm: recorded")
    assert parse_inventory(vmm).environment("rec").vmm == "recorded"  # its own vmm name is known now


def test_this_machine_is_no_layer_of_any_registered_provider(recorded):
    """Its root has /.dockerenv and systemd-detect-virt says docker: only positive evidence names a layer."""
    from vhpclib.fingerprint import collect_fingerprint
    from vhpclib.remote import LocalExecutor

    facts = collect_fingerprint(LocalExecutor(), timeout=120)
    layer = facts["layer"]  # probes of every registered kind ran (some always print, e.g. the kernel release)
    assert layer["detected"] is None and layer["evidence"]["layer_recorded"] is None, layer


def test_up_and_down_bracket_a_measurement_and_only_what_was_started_is_stopped(recorded, tmp_path):
    inv = parse_inventory(_inventory(tmp_path).read_text())
    log = tmp_path / "wrapper.log"
    lines: list[str] = []
    with environments_up(inv, ["rec"], log=lines.append) as started:
        assert started == ["rec"] and log.read_text() == "up\n"
    assert log.read_text() == "up\ndown\n" and lines == [f"recorded: {log} started"]
    with environments_up(inv, ["rec"], log=lines.append) as started:
        assert started == []  # already up: left as it was
    assert log.read_text() == "up\ndown\n"


# ------------------------------------------------------------------ end to end

@pytest.mark.mpi
def test_a_provider_registered_from_a_test_runs_imb_through_run_tables_figures_and_report(recorded, tmp_path):
    inventory = _inventory(tmp_path)
    log = tmp_path / "wrapper.log"
    run = _vhpc(["run", "microbench", "-i", str(inventory), "-e", "rec", "-c", "plug", "--msglog", "0:4",
                 "--iterations", "20", "--repetitions", "2", "--no-progress", "--no-figures"], tmp_path)
    assert "2 run(s) measured" in run.stdout, run.stdout

    runs = sorted((tmp_path / "data/raw/plug/rec/microbench").glob("pingpong-intra-socket-*"))
    assert len(runs) == 2
    wrapped = [line for line in log.read_text().splitlines() if line.startswith("ran ")]
    for path in runs:
        record = json.loads((path / "run.json").read_text())
        assert record["status"] == "complete" and record["execution"]["exit_status"] == 0
        spec = record["environment_spec"]
        assert spec["provider"] == "recorded" and spec["vmm"] == "recorded"
        assert spec["facts"]["wrapped_by"] == "recorded-wrapper"
        assert "recorded-wrapper" in record["execution"]["command"]
        # the launch ran in the run's own folder, under the wrapper
        assert any(f"/.{path.name}.partial-" in line for line in wrapped), (path.name, wrapped)
    assert any(".partial-" not in line for line in wrapped), "the fingerprint ran inside the layer too"
    [fingerprint] = (tmp_path / "data/raw/plug/rec/fingerprint").glob("*.json")
    layer = json.loads(fingerprint.read_text())["layer"]
    assert layer["detected"] == "recorded" and layer["evidence"]["layer_recorded"] == str(log)  # seen from inside

    _vhpc(["tables", "-c", "plug"], tmp_path)
    table = pd.read_csv(tmp_path / "data/processed/plug/microbench.csv")
    assert set(table["environment"]) == {"rec"} and (table["t_avg_usec"] > 0).all() and len(table) == 2 * 6
    envs = pd.read_csv(tmp_path / "data/processed/plug/environments.csv")
    assert list(envs["vmm"]) == ["recorded"]

    _vhpc(["figures", "-c", "plug", "--no-progress"], tmp_path, timeout=900)
    report = (tmp_path / "figures/plug/report.html").read_text()
    assert "<td>rec</td><td>recorded</td>" in report, "the report's environment table names it and its layer"


@pytest.mark.mpi
def test_what_the_layer_cannot_run_is_stored_as_a_skip_with_its_reason(recorded, tmp_path):
    inventory = _inventory(tmp_path, max_ranks_per_node=1)
    run = _vhpc(["run", "microbench", "-i", str(inventory), "-e", "rec", "-c", "skip", "--msglog", "0:2",
                 "--iterations", "10", "--repetitions", "1", "--no-progress", "--no-figures"], tmp_path)
    assert "0 run(s) measured" in run.stdout and "at most 1 rank(s) per node, this point needs 2" in run.stdout
    skipped = pd.read_csv(tmp_path / "data/processed/skip/skipped.csv")
    assert skipped["reason"].str.contains("recorded layer").any()
    assert not any(line.startswith("ran ") and ".partial-" in line  # no launch in a run's folder
                   for line in (tmp_path / "wrapper.log").read_text().splitlines())
