"""Host fingerprints: parsing captured script output, collecting over SSH, write-once storage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vhpclib.config import HostSpec
from vhpclib.exceptions import ParseError, VhpcError
from vhpclib.fingerprint import (collect_fingerprint, fingerprint_script, parse_fingerprint, split_sections,
                                 store_fingerprint)
from vhpclib.mpi import MpiRuntime
from vhpclib.remote import LocalExecutor, SshExecutor

FIXTURES = Path(__file__).parent / "fixtures" / "fingerprint"


@pytest.fixture
def fixture_text(tmp_path):
    def read(name: str) -> str:
        copy = tmp_path / name
        shutil.copyfile(FIXTURES / name, copy)
        return copy.read_text()
    return read


def test_parse_captured_docker_on_kvm_host(fixture_text):
    facts = parse_fingerprint(fixture_text("docker-on-kvm-debian12.txt"))
    assert facts["hostname"] == "vm"
    assert facts["kernel"] == "6.18.44-fc-v657"
    assert facts["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert facts["cpu"]["model"] == "Intel(R) Xeon(R) Processor"
    assert facts["topology"] == {"sockets": 1, "cores_per_socket": 2, "threads_per_core": 1, "numa_nodes": 1,
                                 "logical_cpus": 2}
    assert facts["memory"]["total_kib"] == 24731708
    # systemd-detect-virt says docker (the root has /.dockerenv), but no layer probe shows a container from
    # inside: the host is not called one; what the tool said is kept beside it.
    assert facts["virtualization"] == {"detected": "kvm", "vm": "kvm", "container": "none",
                                       "sys_hypervisor": None, "is_vm": True, "detect_virt_container": "docker"}
    assert facts["rdma"] == {"devices": [], "pci": [], "ibv": [], "passthrough_suspected": False}
    assert facts["network"]["pci"] is None  # lspci is not installed there: unknown, not "no NICs"
    assert facts["governor"] is None and facts["clocksource"] == "tsc"
    assert facts["mpi_version"].startswith("Intel(R) MPI Library for Linux* OS, Version 2021.16")
    assert {"lspci", "ibv_devinfo", "governor", "sys_hypervisor", "infiniband"} <= set(facts["probes_missing"])


def test_parse_without_mpi_runtime_gives_null_version(fixture_text):
    facts = parse_fingerprint(fixture_text("docker-on-kvm-no-mpi.txt"))
    assert facts["mpi_version"] is None
    assert facts["kernel"] == "6.18.44-fc-v657"


def test_parse_bare_metal_node_with_infiniband(fixture_text):
    facts = parse_fingerprint(fixture_text("synthetic-baremetal-ib-openmpi.txt"))
    assert facts["virtualization"]["detected"] == "none"  # "none" with exit 1 is an answer
    assert facts["virtualization"]["is_vm"] is False
    assert facts["topology"]["sockets"] == 2 and facts["topology"]["cores_per_socket"] == 4
    assert facts["topology"]["numa_nodes"] == 2
    assert facts["rdma"]["devices"] == ["mlx4_0"]
    assert facts["rdma"]["pci"] == ["05:00.0 InfiniBand [0c06]: Mellanox Technologies MT26428 [ConnectX VPI "
                                    "PCIe 2.0 5GT/s - IB QDR / 10GigE] [15b3:673c] (rev b0)"]
    assert facts["rdma"]["ibv"] == [{"hca_id": "mlx4_0", "fw_ver": "2.7.000", "state": "PORT_ACTIVE (4)",
                                     "link_layer": "IB"}]
    assert facts["rdma"]["passthrough_suspected"] is False  # bare metal: the HCA is simply there
    assert len(facts["network"]["pci"]) == 3
    assert facts["governor"] == "performance"
    assert facts["mpi_version"] == "mpirun (Open MPI) 1.4.3"


def test_parse_xen_guest_flags_rdma_passthrough_and_survives_missing_tools(fixture_text):
    facts = parse_fingerprint(fixture_text("synthetic-xen-guest-passthrough.txt"))
    assert facts["virtualization"]["detected"] == "xen"
    assert facts["virtualization"]["vm"] == "xen"
    assert facts["rdma"]["passthrough_suspected"] is True
    assert facts["topology"] is None and facts["cpu"]["model"] is None  # no lscpu: null, not a failure
    assert facts["mpi_version"] is None  # mpirun exited 127
    assert facts["clocksource"] == "xen"


def test_parse_rejects_text_without_sections():
    with pytest.raises(ParseError, match="no fingerprint sections"):
        parse_fingerprint("Linux vm 6.1\n")


def test_split_sections_ignores_a_section_cut_off_before_its_end_marker():
    text = "@@vhpc-begin kernel@@\n6.1\n@@vhpc-end kernel rc=0@@\n@@vhpc-begin os@@\nDebian"
    assert split_sections(text) == {"kernel": ("6.1", 0)}


def test_script_quotes_the_mpirun_path():
    runtime = MpiRuntime("intel", Path("/opt/x"), "/opt/my mpi/bin/mpirun; touch /tmp/no", env={"A": "$(x)"})
    script = fingerprint_script(runtime)
    assert "'/opt/my mpi/bin/mpirun; touch /tmp/no'" in script
    assert "A='$(x)'" in script


def test_collect_locally_runs_every_probe_in_one_round_trip():
    calls = []

    class Counting(LocalExecutor):
        def _run(self, command, timeout):
            calls.append(command)
            return super()._run(command, timeout)

    facts = collect_fingerprint(Counting("here"))
    assert len(calls) == 1
    assert facts["host"] == "here" and facts["kernel"] and facts["topology"]["logical_cpus"] >= 1
    assert facts["collected_utc"].endswith("Z")


def test_collect_over_ssh_reports_the_host_and_its_mpi(sshd_hosts):
    from vhpclib.config import Environment
    from vhpclib.mpi import runtime_for

    spec = HostSpec(address=sshd_hosts.addresses[2], port=sshd_hosts.port, user="root",
                    key_file=sshd_hosts.client_key)
    env = Environment.model_validate(sshd_hosts.inventory_data()["environments"]["ssh"])
    with SshExecutor(spec, known_hosts=sshd_hosts.known_hosts) as executor:
        facts = collect_fingerprint(executor, runtime_for(env), timeout=60)
    assert facts["host"] == sshd_hosts.addresses[2]
    assert facts["mpi_version"].startswith("Intel(R) MPI Library")
    assert facts["topology"]["logical_cpus"] >= 1


def _facts(host="node1", kernel="6.1.0", stamp="2026-01-01T00:00:00Z"):
    return {"host": host, "kernel": kernel, "topology": {"sockets": 2}, "collected_utc": stamp, "duration_s": 0.1}


def test_store_writes_once_and_reuses_identical_facts(tmp_path):
    first = store_fingerprint(_facts(), "c1", "xen", tmp_path)
    assert first == tmp_path / "c1" / "xen" / "fingerprint" / "node1.json"
    again = store_fingerprint(_facts(stamp="2026-02-02T00:00:00Z"), "c1", "xen", tmp_path)
    assert again == first
    assert json.loads(first.read_text())["collected_utc"] == "2026-01-01T00:00:00Z"  # never rewritten
    assert sorted(p.name for p in first.parent.iterdir()) == ["node1.json"]  # no temp files left


def test_store_keeps_old_fingerprint_when_facts_change(tmp_path):
    first = store_fingerprint(_facts(), "c1", "kvm", tmp_path)
    changed = store_fingerprint(_facts(kernel="6.2.0"), "c1", "kvm", tmp_path)
    assert changed != first and changed.name.startswith("node1.") and changed.name.endswith("Z.json")
    assert json.loads(first.read_text())["kernel"] == "6.1.0"
    assert json.loads(changed.read_text())["kernel"] == "6.2.0"
    assert store_fingerprint(_facts(kernel="6.2.0"), "c1", "kvm", tmp_path) == changed  # latest reused
    assert len(list(first.parent.glob("*.json"))) == 2


def test_store_rejects_unsafe_campaign_and_sanitises_host(tmp_path):
    with pytest.raises(VhpcError, match="campaign"):
        store_fingerprint(_facts(), "../evil", "xen", tmp_path)
    path = store_fingerprint(_facts(host="fe80::1%eth0"), "c1", "xen", tmp_path)
    assert path.parent == tmp_path / "c1" / "xen" / "fingerprint" and "/" not in path.name
