"""The audit's bad-input corpus: inventories, options and logs through the real CLI.

Every case must end with the expected exit code (2 for bad input), exactly one ``vhpc: error:`` line (or
one per problem where a file holds several), no traceback, within its timeout (no hang), and nothing
written to the repository or to the data folder. The cases run in parallel once per module; each is
then asserted on its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rl_helpers import ROOT, cli_env, repo_state

FIXTURES = ROOT / "tests" / "fixtures"
TIMEOUT_S = 90

BASE = """name: corpus
environments:
  bmm:
    label: BMM
    baseline: true
    hosts:
      - address: node1.example
        user: hpc
        port: 22
"""
HOST = "      - address: node1.example\n        user: hpc\n        port: 22\n"


def env_with(extra: str) -> str:
    """BASE with ``extra`` lines added to the environment (4-space indent)."""
    return BASE.replace("    baseline: true\n", "    baseline: true\n" + extra)


def host_with(extra: str) -> str:
    return BASE.replace("        port: 22\n", "        port: 22\n" + extra)


def replace(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new)


BOMB = "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 10 if p else ["x"] * 10) + "]\n"
               for p, c in zip([None, "a", "b", "c", "d", "e", "f"], "abcdefg"))


@dataclass
class Case:
    id: str
    args: list[str]
    fragments: tuple[str, ...] = ()
    code: int = 2
    errors: int = 1  # how many "vhpc: error:" lines
    files: dict[str, bytes | str] = field(default_factory=dict)  # name -> content, created before the run
    special: str | None = None  # "fifo:<name>", "dir:<name>", "sparse:<name>"


def inv(case_id: str, text: str | bytes, *fragments: str, errors: int = 1, run: bool = False) -> Case:
    command = ["run", "microbench", "-i", "{inv.yml}", "-c", "x", "--no-figures"] if run else \
        ["inventory", "validate", "{inv.yml}"]
    return Case(f"inventory-{case_id}", command, fragments, errors=errors, files={"inv.yml": text})


INVENTORY_CASES = [
    inv("empty", "", "an inventory must be a mapping"),
    inv("only-comments", "# nothing here\n", "an inventory must be a mapping"),
    inv("top-level-list", "- a\n- b\n", "an inventory must be a mapping"),
    inv("top-level-scalar", "hello\n", "an inventory must be a mapping"),
    inv("bad-indentation", BASE.replace("    label: BMM", "  label: BMM", 1), "not valid YAML"),
    inv("unclosed-bracket", env_with("    env: {A: [1\n"), "not valid YAML"),
    inv("tab-indentation", BASE.replace("    label", "\tlabel", 1), "not valid YAML"),
    inv("duplicate-top-key", BASE + "name: again\n", "duplicate key 'name' (first at line 1)"),
    inv("duplicate-environment", BASE + "  bmm:\n    label: X\n    hosts: [{local: true}]\n",
        "duplicate key 'bmm' (first at line 3)"),
    inv("duplicate-host-key", host_with("        user: other\n"), "duplicate key 'user'"),
    inv("duplicate-env-label", env_with("    label: Again\n"), "duplicate key 'label'"),
    inv("binary", bytes(range(256)) * 4, "not UTF-8"),
    inv("latin-1", BASE.replace("label: BMM", "label: BMM\n    description: caf\xe9").encode("latin-1"), "not UTF-8"),
    inv("utf-16-le", b"\xff\xfe" + BASE.encode("utf-16-le"), "UTF-16"),
    inv("utf-16-be", b"\xfe\xff" + BASE.encode("utf-16-be"), "UTF-16"),
    inv("nul-byte", BASE.replace("BMM", "B\0MM"), "NUL byte"),
    inv("too-large", BASE + ("# padding padding padding padding\n" * 40000), "larger than 1000 kB"),
    inv("yaml-bomb", BOMB, "YAML bomb"),
    inv("deep-flow-nesting", "a: " + "[" * 20000 + "]" * 20000 + "\n", "nested deeper than 32 levels"),
    inv("deep-block-nesting", "".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60 + "v: 1\n",
        "nested deeper than 32 levels"),
    inv("environments-empty", "environments: {}\n", "environments"),
    inv("environments-null", "environments:\n", "environments"),
    inv("environments-list", "environments: [a, b]\n", "environments"),
    inv("no-environments", "name: x\n", "environments: required key is missing"),
    inv("env-without-label", replace("    label: BMM\n", ""), "label: required key is missing"),
    inv("env-without-hosts", replace(HOST, "").replace("    hosts:\n", ""), "needs at least one host"),
    inv("hosts-empty", replace("    hosts:\n" + HOST, "    hosts: []\n"), "hosts"),
    inv("hosts-not-a-list", replace("    hosts:\n" + HOST, "    hosts: node1\n"), "hosts"),
    inv("host-local-and-address", host_with("        local: true\n"), "exactly one of"),
    inv("host-without-address", replace("      - address: node1.example\n", "      - name: n1\n"),
        "exactly one of"),
    inv("address-shell", replace("node1.example", "'a;rm -rf /'"), "not a valid host name"),
    inv("address-substitution", replace("node1.example", "'$(reboot)'"), "not a valid host name"),
    inv("address-option", replace("node1.example", "-oProxyCommand=x"), "not a valid host name"),
    inv("user-shell", replace("user: hpc", "user: 'hpc;id'"), "not a valid user name"),
    inv("port-zero", replace("port: 22", "port: 0"), "port"),
    inv("port-too-large", replace("port: 22", "port: 70000"), "port"),
    inv("port-text", replace("port: 22", "port: ssh"), "port"),
    inv("port-infinite", replace("port: 22", "port: .inf"), "port"),
    inv("timeout-infinite", env_with("    timeout_s: .inf\n"), "timeout_s", "finite"),
    inv("timeout-nan", env_with("    timeout_s: .nan\n"), "timeout_s", "finite"),
    inv("timeout-negative", env_with("    timeout_s: -1\n"), "timeout_s"),
    inv("timeout-zero", env_with("    timeout_s: 0\n"), "timeout_s"),
    inv("timeout-text", env_with("    timeout_s: soon\n"), "timeout_s"),
    inv("connect-timeout-infinite", env_with("    connect_timeout_s: .inf\n"), "connect_timeout_s"),
    inv("connect-timeout-huge", env_with("    connect_timeout_s: 100000\n"), "connect_timeout_s"),
    inv("contention-negative", env_with("    contention_threshold: -1\n"), "contention_threshold"),
    inv("contention-nan", env_with("    contention_threshold: .nan\n"), "contention_threshold"),
    inv("contention-word", env_with("    contention_threshold: sometimes\n"), "contention_threshold"),
    inv("vmm-unknown-word", env_with("    vmm: kvmm\n"), "vmm", "'kvmm'"),
    inv("vmm-number", env_with("    vmm: 42\n"), "vmm"),
    inv("vmm-bare-metal-alias", env_with("    vmm: bare-metal\n"), "vmm"),
    inv("pinning-unknown", env_with("    vcpu_pinning: maybe\n"), "vcpu_pinning"),
    inv("host-key-policy", env_with("    host_key_policy: yolo\n"), "host_key_policy"),
    inv("launcher-unknown", env_with("    launcher: qsub\n"), "unknown launcher 'qsub'"),
    inv("mpi-flavour", env_with("    mpi: {flavour: lam}\n"), "unknown MPI flavour 'lam'"),
    inv("mpi-env-name", env_with("    mpi: {env: {'X;id': '1'}}\n"), "not a valid environment variable name"),
    inv("env-name-digit", env_with("    env: {1ABC: x}\n"), "not a valid environment variable name"),
    inv("env-value-list", env_with("    env: {A: [1, 2]}\n"), "env.A"),
    inv("unknown-top-key", BASE + "colour: red\n", "colour: unknown key"),
    inv("unknown-env-key", env_with("    colour: red\n"), "environments.bmm.colour: unknown key"),
    inv("unknown-host-key", host_with("        usr: hpc\n"), "hosts.0.usr: unknown key"),
    inv("two-baselines", BASE + "  xen:\n    label: Xen\n    baseline: true\n    hosts: [{address: x.example}]\n",
        "exactly one environment may be the baseline"),
    inv("no-baseline", replace("    baseline: true\n", "") + "  xen:\n    label: X\n    hosts: [{local: true}]\n",
        "baseline: true"),
    inv("env-name-space", replace("  bmm:\n", "  'b m':\n"), "environment name"),
    inv("env-name-traversal", replace("  bmm:\n", "  '../x':\n"), "environment name"),
    inv("label-slash", replace("label: BMM", "label: a/b"), "label must be"),
    inv("workdir-relative", env_with("    workdir: scratch\n"), "workdir must be an absolute path"),
    inv("workdir-newline", env_with("    workdir: \"/tmp/a\\nb\"\n"), "workdir must be an absolute path"),
    inv("topology-zero-sockets", env_with("    topology: {sockets: 0, cores_per_socket: 4}\n"), "sockets"),
    inv("topology-infinite-cores", env_with("    topology: {sockets: 1, cores_per_socket: .inf}\n"),
        "cores_per_socket"),
    inv("npb-version", env_with("    benchmarks: {npb: {version: '9.9'}}\n"), "version"),
    inv("npb-no-benchmarks", env_with("    benchmarks: {npb: {benchmarks: []}}\n"), "benchmarks"),
    inv("npb-unknown-benchmark", env_with("    benchmarks: {npb: {benchmarks: [xx-mz]}}\n"), "benchmarks"),
    inv("redaction-allow-name", BASE + "redaction_allow: ['BAD NAME']\n", "not a valid environment variable"),
    inv("integer-key", "1: x\nenvironments: {}\n", "keys must be text"),
    inv("unhashable-key", "? [a, b]\n: c\n", "not valid YAML"),
    inv("jump-address", host_with("        jump: {address: 'x y'}\n"), "not a valid host name"),
    inv("jump-port", host_with("        jump: {address: j.example, port: 0}\n"), "jump.port"),
    inv("three-problems", env_with("    vmm: kvmm\n    colour: red\n    timeout_s: .inf\n"), errors=3),
    inv("run-with-duplicate-keys", BASE + "name: again\n", "duplicate key", run=True),
    inv("run-with-bomb", BOMB, "YAML bomb", run=True),
    inv("run-with-binary", bytes(range(256)), "not UTF-8", run=True),
    Case("inventory-fifo", ["inventory", "validate", "{fifo}"], ("not a regular file",), special="fifo:fifo"),
    Case("inventory-dev-zero", ["inventory", "validate", "/dev/zero"], ("not a regular file",)),
    Case("inventory-directory", ["inventory", "validate", "{dir}"], ("cannot read inventory",), special="dir:dir"),
    Case("inventory-missing", ["inventory", "validate", "{nothing.yml}"], ("cannot read inventory",)),
    Case("run-inventory-fifo", ["run", "microbench", "-i", "{fifo}", "-c", "x"], ("not a regular file",),
         special="fifo:fifo"),
    Case("run-inventory-dev-zero", ["run", "microbench", "-i", "/dev/zero", "-c", "x"], ("not a regular file",)),
    Case("check-inventory-missing", ["inventory", "check", "{nothing.yml}"], ("cannot read inventory",)),
]


def opt(case_id: str, args: list[str], *fragments: str, code: int = 2) -> Case:
    return Case(f"option-{case_id}", args, fragments, code=code)


MB = ["run", "microbench", "-c", "x", "--no-figures", "--no-progress"]
SN = ["run", "single-node", "-c", "x", "--no-figures", "--no-progress"]
SC = ["run", "scaling", "-c", "x", "--no-figures", "--no-progress"]
OPTION_CASES = [
    *[opt(f"timeout-{v}", [*MB, "--timeout", v], "timeout") for v in ("inf", "nan", "0", "-1", "-inf", "1e400")],
    opt("timeout-word", [*MB, "--timeout", "soon"], "--timeout"),
    *[opt(f"iterations-{v}", [*MB, "--iterations", v], "--iterations") for v in ("0", "-5", "99999999999", "x")],
    *[opt(f"time-limit-{v}", [*MB, "--time-limit", v], "time") for v in ("0", "-1", "inf", "nan")],
    *[opt(f"msglog-{v or 'empty'}", [*MB, "--msglog", v], "msglog") for v in ("0-4", "5:2", "0:40", "a:b", "-1:3",
                                                                               "", "1:2:3")],
    *[opt(f"repetitions-{v}", [*MB, "--repetitions", v], "--repetitions") for v in ("0", "-1", "x", "100000")],
    opt("placement", [*MB, "--placement", "inter-rack"], "inter-rack"),
    opt("environment", [*MB, "--env", "kvm"], "no environment 'kvm'"),
    opt("unknown-option", [*MB, "--bogus"], "--bogus"),
    opt("inventory-missing", [*MB, "--inventory", "/nonexistent/inv.yml"], "cannot read inventory"),
    opt("preset", [*SN, "--preset", "enormous"], "unknown blockss preset"),
    opt("workload", [*SN, "-w", "hpl"], "hpl"),
    opt("npb-class", [*SN, "--class", "Z"], "NPB class"),
    opt("single-node-repetitions", [*SN, "--repetitions", "0"], "--repetitions"),
    opt("single-node-timeout", [*SN, "--timeout", "inf"], "timeout"),
    *[opt(f"processes-{v}", [*SC, "--processes", v], "--processes") for v in ("0", "-3", "x")],
    opt("tables-traversal", ["tables", "-c", "../../x"], "campaign"),
    opt("tables-missing", ["tables", "-c", "nope"], "no campaign 'nope'"),
    opt("check-timeout", ["inventory", "check", "inventories/local.yml", "--timeout", "inf"], "timeout"),
    opt("check-zero-timeout", ["inventory", "check", "inventories/local.yml", "--timeout", "0"], "timeout"),
    opt("check-environment", ["inventory", "check", "inventories/local.yml", "-e", "nope"], "no environment 'nope'"),
    opt("check-campaign", ["inventory", "check", "inventories/local.yml", "-c", "a/b"], "campaign"),
    Case("option-parse-kind", ["parse", "osu", "{x.log}"], ("osu",), files={"x.log": "x\n"}),
    opt("parse-no-files", ["parse", "imb"], "Missing argument"),
    opt("no-command", ["frobnicate"], "frobnicate"),
]


def log(case_id: str, kind: str, content: bytes | str | None = None, *fragments: str, fixture: str | None = None,
        special: str | None = None) -> Case:
    files = {"log.txt": content} if content is not None else {}
    if fixture:
        target = str(FIXTURES / fixture)
    else:
        target = "{log.txt}" if content is not None else "{" + special.split(":")[1] + "}"
    return Case(f"log-{kind}-{case_id}", ["parse", kind, target], fragments, files=files, special=special)


LOG_CASES = [
    *[log("empty", kind, "", "") for kind in ("imb", "npb", "app", "mzdemo")],
    *[log("binary", kind, bytes(range(256)) * 8, "") for kind in ("imb", "npb", "app", "mzdemo")],
    *[log("fifo", kind, None, "not a regular file", special="fifo:pipe") for kind in ("imb", "npb", "app")],
    *[log("huge-sparse", kind, None, "MiB", special="sparse:big.log") for kind in ("imb", "npb")],
    *[log("directory", kind, None, "not a regular file", special="dir:logs") for kind in ("imb", "app")],
    log("dev-zero", "imb", None, "not a regular file", special="path:/dev/zero"),
    log("missing", "npb", None, "cannot read", special="path:/nonexistent/x.log"),
    log("error-option", "imb", None, "", fixture="imb/error_bad_option_msglog.log"),
    log("help-only", "imb", None, "", fixture="imb/error_help_only_np2.log"),
    log("latin-1", "imb", "# Benchmarking PingPong caf\xe9\n".encode("latin-1") * 10, ""),
    log("utf-16", "imb", (FIXTURES / "imb/pingpong_iter100_np2_shm.log").read_text().encode("utf-16"), ""),
    log("one-long-line", "imb", "x" * 5_000_000, ""),
    log("npb-no-verification", "npb", "NAS Parallel Benchmarks\n Class = S\n", ""),
    log("app-truncated", "app", (FIXTURES / "app/tiny.np2.omp1.log").read_text()[:200], ""),
    log("app-error", "app", None, "", fixture="app/tiny.np2.error-both-inputs.log"),
    log("imb-as-npb", "npb", None, "", fixture="imb/pingpong_iter100_np2_shm.log"),
    log("npb-as-imb", "imb", None, "", fixture="npb/sp-mz.S.np2.omp1.impi.log"),
    log("npb-as-app", "app", None, "", fixture="npb/sp-mz.S.np2.omp1.impi.log"),
]

CASES = INVENTORY_CASES + OPTION_CASES + LOG_CASES


def prepare(case: Case, folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    for name, content in case.files.items():
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    if case.special:
        kind, _, name = case.special.partition(":")
        if kind == "fifo":
            os.mkfifo(folder / name)
        elif kind == "dir":
            (folder / name).mkdir()
        elif kind == "sparse":
            with open(folder / name, "wb") as fh:
                fh.truncate(200 * 2**20)  # 200 MiB of holes: never read, refused by its size
    names = {**{n: str(folder / n) for n in case.files}, "nothing.yml": str(folder / "nothing.yml")}
    if case.special and not case.special.startswith("path:"):
        names[case.special.partition(":")[2]] = str(folder / case.special.partition(":")[2])
    if case.special and case.special.startswith("path:"):
        names[case.special.partition(":")[2]] = case.special.partition(":")[2]
    out = []
    for arg in case.args:
        if arg.startswith("{") and arg.endswith("}"):
            arg = names[arg[1:-1]]
        out.append(arg)
    return out


def execute(case: Case, root: Path) -> tuple[Case, object, Path]:
    folder = root / case.id
    args = prepare(case, folder)
    data = folder / "data"
    try:
        done = subprocess.run([sys.executable, "-m", "vhpclib.cli", *args], cwd=ROOT, env=cli_env(data),
                              capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        return case, exc, data
    return case, done, data


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    before = repo_state()
    with ThreadPoolExecutor(max_workers=max(2, min(8, 2 * (os.cpu_count() or 1)))) as pool:
        results = {case.id: (done, data) for case, done, data in pool.map(lambda c: execute(c, root), CASES)}
    results["__repo__"] = (repo_state() == before, None)
    return results


def test_the_corpus_has_about_150_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 150


def test_the_corpus_wrote_nothing_to_the_repository(outcomes):
    assert outcomes["__repo__"][0], "a bad-input case changed the checkout"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_the_right_exit_code(outcomes, case):
    done, data = outcomes[case.id]
    assert not isinstance(done, subprocess.TimeoutExpired), f"{case.id} hung for {TIMEOUT_S} s"
    text = done.stderr + done.stdout
    assert "Traceback" not in text, text[-3000:]
    assert done.returncode == case.code, (done.returncode, done.stderr[-2000:])
    errors = [line for line in done.stderr.splitlines() if line.startswith("vhpc: error: ")]
    strays = [line for line in done.stderr.splitlines() if line and not line.startswith("vhpc: ")]
    assert len(errors) == case.errors and not strays, done.stderr[-2000:]
    for fragment in case.fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert not data.exists(), f"{case.id} wrote {sorted(p.name for p in data.rglob('*'))[:5]}"
