"""Inventory validation (errors name file, line and key), example inventories, `inventory check`."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import yaml

from vhpclib import paths
from vhpclib.config import load_inventory, parse_inventory
from vhpclib.exceptions import InventoryError
from vhpclib.inventory_check import check_inventory, compare_with_inventory, render_table

GOOD = """\
name: t
environments:
  bmm:
    label: BMM
    baseline: true
    hosts:
      - address: node1.example
  xen:
    label: Xen
    vmm: xen
    vcpu_pinning: pinned
    hosts:
      - address: xen1.example
        user: hpc
"""


def error_of(text: str, file: str = "cluster.yml") -> InventoryError:
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, file)
    return info.value


# ---------------------------------------------------------------- example inventories

@pytest.mark.parametrize("name", ["agc-example.yml", "ec2-example.yml", "local.yml"])
def test_example_inventories_validate(name, tmp_path):
    copy = tmp_path / name
    shutil.copyfile(paths.INVENTORIES / name, copy)
    inventory = load_inventory(copy)
    assert inventory.source == copy
    for env in inventory.environments.values():
        for host in env.hosts:
            assert host.local or host.address.endswith(".example")


def test_agc_example_describes_the_papers_cluster():
    inv = load_inventory(paths.INVENTORIES / "agc-example.yml")
    assert list(inv.environments) == ["bmm", "xen", "kvm"] and inv.baseline == "bmm"
    assert inv.environments["xen"].vcpu_pinning == "pinned"
    assert inv.environments["kvm"].vcpu_pinning == "scheduler"
    for env in inv.environments.values():
        assert len(env.hosts) == 16
        assert (env.topology.sockets, env.topology.cores_per_socket, env.topology.threads_per_core) == (2, 4, 1)
        assert env.mpi.flavour == "openmpi"
        assert env.mpi.options[:3] == ["--mca", "mpi_leave_pinned", "0"]
        assert env.host_key_policy == "strict"
        assert all(h.jump is not None and h.jump.address == "login.agc.example" for h in env.hosts)
    assert inv.environments["bmm"].hosts[0].address == "agc-node01.example"
    assert inv.environments["kvm"].benchmarks.npb.built_in == "bmm"


def test_ec2_example_is_a_cluster_vhpc_creates_with_its_guards():
    inv = load_inventory(paths.INVENTORIES / "ec2-example.yml")
    env = inv.environments["ec2"]
    cloud = env.section("cloud")
    assert env.kind == "cloud" and env.hosts == [] and env.vmm == "ec2"
    assert (cloud.instance_type, cloud.count, cloud.placement_group, cloud.efa) == ("c5n.18xlarge", 2, "create", "auto")
    assert cloud.image.startswith("/aws/service/") and cloud.ssh_from == "auto"
    assert cloud.max_instances >= cloud.count and cloud.max_hours <= 2 and cloud.emulator is None
    assert (env.topology.sockets, env.topology.cores_per_socket, env.topology.threads_per_core) == (2, 18, 2)


# ---------------------------------------------------------------- errors: file, line, key

def test_valid_inventory_parses():
    inv = parse_inventory(GOOD, "cluster.yml")
    assert inv.baseline == "bmm" and inv.environments["xen"].hosts[0].user == "hpc"


def test_unknown_key_is_named_with_its_line():
    err = error_of(GOOD.replace("        user: hpc\n", "        usr: hpc\n"))
    assert (err.file, err.line, err.key) == ("cluster.yml", 14, "environments.xen.hosts.0.usr")
    assert str(err) == "cluster.yml:14: environments.xen.hosts.0.usr: unknown key"


@pytest.mark.parametrize("address", ["a;rm -rf /", "$(reboot)", "`id`", "node1.example && id", "-oProxyCommand=x"])
def test_host_name_holding_shell_syntax_is_rejected(address):
    err = error_of(GOOD.replace("xen1.example", yaml.safe_dump(address).splitlines()[0]))
    assert (err.line, err.key) == (13, "environments.xen.hosts.0.address")
    assert "not a valid host name or address" in str(err) and str(err).startswith("cluster.yml:13: ")


def test_user_and_env_names_holding_shell_syntax_are_rejected():
    err = error_of(GOOD.replace("user: hpc", "user: 'hpc;id'"))
    assert err.key == "environments.xen.hosts.0.user" and err.line == 14
    err = error_of(GOOD.replace("    vmm: xen\n", "    vmm: xen\n    env: {'X;id': '1'}\n"))
    assert err.key == "environments.xen.env" and "not a valid environment variable name" in err.message


def test_two_baselines_point_at_the_second_one():
    err = error_of(GOOD.replace("    vmm: xen\n", "    vmm: xen\n    baseline: true\n"))
    assert (err.line, err.key) == (11, "environments.xen.baseline")
    assert "exactly one environment may be the baseline" in str(err)


def test_missing_baseline_among_several_environments_is_an_error():
    err = error_of(GOOD.replace("    baseline: true\n", ""))
    assert (err.line, err.key) == (2, "environments")
    assert "baseline: true" in err.message


def test_environment_without_hosts_is_an_error():
    err = error_of(GOOD.replace("    hosts:\n      - address: node1.example\n", ""))
    assert err.key == "environments.bmm.hosts" and err.line == 3
    assert str(err).startswith("cluster.yml:3: environments.bmm.hosts: an environment needs at least one host "
                               "(or a 'vm:' guest vHPC boots")  # every kind that brings hosts is named
    err = error_of(GOOD.replace("    hosts:\n      - address: node1.example\n", "    hosts: []\n"))
    assert err.key == "environments.bmm.hosts" and err.line == 6


def test_a_guest_environment_declares_its_vm_instead_of_hosts():
    inv = parse_inventory(GOOD.replace("    hosts:\n      - address: node1.example\n",
                                       "    vm: {name: g1, vcpus: 2, pin: [0, 1]}\n"))
    assert inv.environments["bmm"].vm.pin == [0, 1] and inv.environments["bmm"].vm.accel == "auto"
    err = error_of(GOOD.replace("    hosts:\n      - address: node1.example\n",
                                "    vm: {name: g1, vcpus: 2, pin: [0]}\n"))
    assert str(err) == "cluster.yml:6: environments.bmm.vm.pin: pin names 1 host CPU(s) for 2 vCPU(s)"
    err = error_of(GOOD.replace("    hosts:\n      - address: node1.example\n",
                                "    hosts:\n      - address: node1.example\n    vm: {name: g1, vcpus: 2}\n"))
    assert err.key == "environments.bmm.vm" and "leave out 'hosts'" in str(err)
    err = error_of(GOOD.replace("    hosts:\n      - address: node1.example\n",
                                "    vm: {name: G1, vcpus: 2}\n"))
    assert err.key == "environments.bmm.vm.name"


def test_bad_yaml_names_the_line():
    err = error_of(GOOD.replace("    label: Xen\n", "    label: [Xen\n"))
    assert err.file == "cluster.yml" and err.line is not None and err.line >= 9
    assert "not valid YAML" in str(err) and str(err).startswith(f"cluster.yml:{err.line}: ")


def test_environment_name_with_spaces_is_named():
    err = error_of(GOOD.replace("  xen:\n", "  'x y':\n"))
    assert (err.line, err.key) == (8, "environments.x y")


def test_load_inventory_reports_a_missing_file(tmp_path):
    with pytest.raises(InventoryError) as info:
        load_inventory(tmp_path / "nope.yml")
    assert info.value.file == str(tmp_path / "nope.yml") and "cannot read inventory" in str(info.value)


# ---------------------------------------------------------------- inventory check

def test_topology_and_vmm_mismatches_are_findings():
    inv = parse_inventory(GOOD.replace("    vmm: xen\n",
                                       "    vmm: xen\n    topology: {sockets: 2, cores_per_socket: 4}\n"))
    facts = {"topology": {"sockets": 1, "cores_per_socket": 2, "threads_per_core": 1},
             "virtualization": {"vm": "kvm", "is_vm": True}, "mpi_version": "x"}
    findings = compare_with_inventory(inv.environments["xen"], facts)
    assert findings == ["topology: inventory expects 2 socket(s) x 4 core(s) x 1 thread(s), host reports 1 x 2 x 1",
                        "inventory says vmm 'xen' but host reports 'kvm'"]
    facts = {"topology": None, "virtualization": {"vm": "kvm", "is_vm": True}, "mpi_version": None}
    findings = compare_with_inventory(inv.environments["bmm"], facts)
    assert any("bare metal" in f for f in findings) and any("no MPI version" in f for f in findings)


def test_check_local_environment_stores_a_fingerprint(tmp_path):
    inv = load_inventory(paths.INVENTORIES / "local.yml")
    report = check_inventory(inv, None, "chk", store_root=tmp_path)
    assert report.exit_code == 0, report.summary()
    [row] = report.rows
    assert row.answered and row.kernel and row.topology and row.mpi_version.startswith("Intel(R) MPI")
    assert Path(row.fingerprint_path) == tmp_path / "chk" / "local" / "fingerprint" / "localhost.json"


def test_check_unknown_environment_is_an_inventory_error(tmp_path):
    inv = load_inventory(paths.INVENTORIES / "local.yml")
    with pytest.raises(InventoryError, match="no environment 'nope'"):
        check_inventory(inv, ["nope"], "chk", store_root=tmp_path)


def test_check_reaches_ssh_hosts_in_parallel_and_names_the_one_that_refuses(sshd_hosts, tmp_path):
    data = sshd_hosts.inventory_data(sshd_hosts.addresses[:4])
    env = data["environments"]["ssh"]
    env["topology"] = {"sockets": 64, "cores_per_socket": 1}
    env["hosts"].append({**env["hosts"][0], "address": "127.0.0.9"})  # nothing listens there
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(data))
    report = check_inventory(load_inventory(path), ["ssh"], "chk", store_root=tmp_path / "raw")
    assert report.exit_code == 1
    assert [r.host for r in report.rows] == sshd_hosts.addresses[:4] + ["127.0.0.9"]
    answered = [r for r in report.rows if r.answered]
    assert len(answered) == 4
    for row in answered:
        assert Path(row.fingerprint_path).is_file()
        assert row.findings and row.findings[0].startswith("topology: inventory expects 64 socket(s)")
    [refused] = report.unanswered
    assert refused.host == "127.0.0.9" and refused.reason == f"127.0.0.9:{sshd_hosts.port}: connection refused"
    assert "1 of 5 host(s) did not answer: ssh/127.0.0.9" in report.summary()
    problems = report.problems()
    assert problems[0] == f"ssh/127.0.0.9: did not answer: 127.0.0.9:{sshd_hosts.port}: connection refused"
    assert problems[1].startswith("ssh/127.0.0.1: topology: inventory expects 64")
    assert sum("topology" in p for p in problems) == 4

    from rich.console import Console
    console = Console(file=io.StringIO(), width=300)
    console.print(render_table(report))
    text = console.file.getvalue()
    assert "connection refused" in text and text.count("yes") == 4


def test_check_twice_reuses_unchanged_fingerprints(sshd_hosts, tmp_path):
    inv = load_inventory(sshd_hosts.write_inventory(tmp_path / "inv.yml", sshd_hosts.addresses[:2]))
    first = check_inventory(inv, None, "chk", store_root=tmp_path / "raw")
    second = check_inventory(inv, None, "chk", store_root=tmp_path / "raw")
    assert first.exit_code == second.exit_code == 0
    assert [r.fingerprint_path for r in first.rows] == [r.fingerprint_path for r in second.rows]
    assert len(list((tmp_path / "raw" / "chk" / "ssh" / "fingerprint").iterdir())) == 2


def test_vmm_unknown_makes_no_claim_to_check():
    from vhpclib.inventory_check import compare_with_inventory

    env = parse_inventory("environments:\n  e:\n    label: e\n    vmm: unknown\n    hosts: [{local: true}]\n"
                          ).environment("e")
    facts = {"virtualization": {"vm": "kvm", "is_vm": True}, "mpi_version": "x"}
    assert compare_with_inventory(env, facts) == []
