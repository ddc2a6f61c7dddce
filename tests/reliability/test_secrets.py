"""No secret of the corpus appears in any file vhpc writes or on any process command line while a job runs.

The corpus holds secrets by name (``DB_PASSWD``, ``API_CREDENTIALS`` ...) and by shape under innocent names
(a URL with a password, a bearer token, a GitHub token). They are given to the job as inventory variables
(environment and MPI), the job proves it received them (it writes their sha256, never the values), and
meanwhile every ``/proc/*/cmdline`` on this machine is scanned.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from vhpclib.config import load_inventory
from vhpclib.launchers import Job
from vhpclib.mpi import LaunchSpec
from vhpclib.params import StageParams
from vhpclib.secrets import REDACTED, redact_argv, redact_env, redact_text, secret_name
from vhpclib.stages.context import StageContext
from vhpclib.stages.driver import run_stage
from vhpclib.store import RawStore
from vhpclib.workloads import Extracted, Point, Workload, register_workload, unregister_workload

pytestmark = pytest.mark.mpi

#: name -> (value, the part of it that must never be seen)
CORPUS = {
    "DB_PASSWD": ("pw-Passwd-7f3a91", "pw-Passwd-7f3a91"),
    "DB_PASSWORD": ("pw-Password-2b8c44", "pw-Password-2b8c44"),
    "MYSQL_PWD": ("pw-Pwd-91d0e2", "pw-Pwd-91d0e2"),
    "API_CREDENTIALS": ("cred-5e1f77aa", "cred-5e1f77aa"),
    "AWS_SECRET_ACCESS_KEY": ("wJalrXUtnFEMIK7MDENGbPxRfiCYzz1", "wJalrXUtnFEMIK7MDENGbPxRfiCYzz1"),
    "GITHUB_TOKEN": ("ghp_Abcdefghijklmnopqrstuvwxyz0123456789", "ghp_Abcdefghijklmnopqrstuvwxyz0123456789"),
    "SESSION_COOKIE": ("sess-c00k1e-7731", "sess-c00k1e-7731"),
    "X_AUTH": ("xauth-value-12345", "xauth-value-12345"),
    "apiKey": ("camel-key-31415926", "camel-key-31415926"),
    "PRIVATE_KEY_PEM": ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n"
                        "-----END OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXktdjEAAAA"),
    "DATABASE_URL": ("postgres://app:url-pass-8d2e@db.example/app", "url-pass-8d2e"),
    "UPSTREAM_INDEX": ("https://ci:upstream-pw-5521@mirror.example/simple", "upstream-pw-5521"),
    "HTTP_HEADER": ("Authorization: Bearer tok3n-b34rer-abcdef012345", "tok3n-b34rer-abcdef012345"),
    "SOME_SETTING": ("ghp_Zyxwvutsrqponmlkjihgfedcba9876543210", "ghp_Zyxwvutsrqponmlkjihgfedcba9876543210"),
}
ALLOWED = {"KEY_SIZE": "4096"}  # looks secret by name, allowed by the inventory


def test_the_redaction_rules_on_names_values_and_command_lines():
    env = {name: value for name, (value, _) in CORPUS.items()} | ALLOWED | {"OMP_NUM_THREADS": "2", "PWD": "/x"}
    redacted = redact_env(env, allow=ALLOWED)
    for name, (_, needle) in CORPUS.items():
        assert needle not in redacted[name], name
    assert redacted["KEY_SIZE"] == "4096" and redacted["OMP_NUM_THREADS"] == "2" and redacted["PWD"] == "/x"
    assert redacted["DATABASE_URL"] == f"postgres://app:{REDACTED}@db.example/app"  # the rest stays readable
    assert redact_argv(["tool", "--password", "hunter2", "--token=abc123", "https://u:p4ss@h/x"]) == [
        "tool", "--password", REDACTED, f"--token={REDACTED}", f"https://u:{REDACTED}@h/x"]
    assert redact_text("mysql -ppw --password=s3cret") == f"mysql -ppw --password={REDACTED}"
    assert all(secret_name(n) for n in ("DB_PASSWD", "api_key", "MyPassword", "X-Auth-Token", "SSH_AUTH_SOCK"))
    assert not any(secret_name(n) for n in ("PATH", "I_MPI_PIN_PROCESSOR_LIST", "OMP_PROC_BIND", "PWD", "MONKEY"))


class ProvesItGotTheSecrets(Workload):
    """One rank that writes the sha256 of every secret it received, then sleeps so its processes can be seen."""

    name = "secret-probe"
    table = "apps"
    stages = ("single-node",)

    def plan(self, stage, ctx, params):
        return [Point(self.name, "secret-probe", {"workload": self.name, "processes": 1, "threads": 1, "ppn": 1})]

    def prepare(self, ctx, points, params):
        return None

    def job(self, ctx, point, repetition, prepared, params):
        lines = "; ".join(f'printf "%s" "${name}" | sha256sum >> seen.txt' for name in CORPUS)
        return Job(["/bin/sh", "-c", f"{lines}; sleep 2"], LaunchSpec(1, report_binding=False),
                   outputs=("seen.txt",))

    def sanity(self, run):
        return []

    def extract(self, run):
        return Extracted([{"time_s": 1.0, "verified": True}])


@pytest.fixture
def probe_workload():
    workload = ProvesItGotTheSecrets()
    register_workload(workload)
    yield workload
    unregister_workload(workload.name)


def with_secrets(data: dict) -> dict:
    env = data["environments"][next(iter(data["environments"]))]
    half = list(CORPUS.items())
    env["env"] = {**{n: v for n, (v, _) in half[::2]}, **ALLOWED}
    env.setdefault("mpi", {})["env"] = {n: v for n, (v, _) in half[1::2]}
    data["redaction_allow"] = list(ALLOWED)
    return data


def scan_cmdlines(found: list[str], stop: threading.Event) -> None:
    needles = [needle.encode() for _, needle in CORPUS.values()]
    while not stop.is_set():
        for proc in psutil.process_iter():
            try:
                cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            except OSError:
                continue
            found += [f"pid {proc.pid}: {n.decode()}" for n in needles if n in cmdline]
        time.sleep(0.05)


def measure_with_scan(inventory_path: Path, environment: str, data: Path, workload: Workload) -> tuple[list, object]:
    found: list[str] = []
    stop = threading.Event()
    scanner = threading.Thread(target=scan_cmdlines, args=(found, stop))
    scanner.start()
    try:
        with StageContext(load_inventory(inventory_path), environment, "sec", store=RawStore(data / "raw")) as ctx:
            result = run_stage(ctx, "single-node", StageParams(workloads=(workload.name,), repetitions=1),
                               progress=False)
    finally:
        stop.set()
        scanner.join()
    return found, result


def assert_no_secret_in_files(folder: Path) -> None:
    needles = [needle.encode() for _, needle in CORPUS.values()]
    for path in folder.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            leaked = [n.decode() for n in needles if n in content]
            assert not leaked, f"{path} holds {leaked}"


def check_run(result) -> None:
    [run] = result.runs
    seen = (run.path / "seen.txt").read_text().split()
    expected = [hashlib.sha256(value.encode()).hexdigest() for value, _ in CORPUS.values()]
    assert seen[::2] == expected, "the job did not receive every secret"
    env = run.record.execution.env
    assert env["KEY_SIZE"] == "4096"
    assert all(needle not in env.get(name, "") for name, (_, needle) in CORPUS.items())


def test_secrets_reach_a_local_job_but_no_command_line_and_no_file(tmp_path, probe_workload):
    data = yaml.safe_load((Path(__file__).parents[2] / "inventories/local.yml").read_text())
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(with_secrets(data)))
    found, result = measure_with_scan(path, "local", tmp_path / "d", probe_workload)
    assert result.failures == [], result.failures
    check_run(result)
    assert found == []
    assert_no_secret_in_files(tmp_path / "d")


@pytest.mark.ssh
def test_secrets_reach_a_job_over_ssh_but_no_command_line_on_either_side_and_no_file(sshd_hosts, tmp_path,
                                                                                     probe_workload):
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(with_secrets(sshd_hosts.inventory_data(sshd_hosts.addresses[1:2]))))
    found, result = measure_with_scan(path, "ssh", tmp_path / "d", probe_workload)
    assert result.failures == [], result.failures
    check_run(result)
    assert found == []  # the "remote" side is this machine: its sshd, shells and ranks were scanned too
    assert_no_secret_in_files(tmp_path / "d")


def test_the_env_given_to_a_local_job_is_not_readable_by_other_users(tmp_path):
    """What replaces the command line: the process environment, readable by its owner only."""
    from vhpclib import lifetime

    job = lifetime.LocalJob(["/bin/sleep", "1"], cwd=tmp_path, env={"DB_PASSWD": "x"}, stdout=tmp_path / "o",
                            stderr=tmp_path / "e", tag=lifetime.new_tag())
    try:
        assert oct(os.stat(f"/proc/{job.sid}/environ").st_mode & 0o777) == "0o400"
        assert b"DB_PASSWD" not in Path(f"/proc/{job.sid}/cmdline").read_bytes()
    finally:
        assert job.wait(10) == 0
