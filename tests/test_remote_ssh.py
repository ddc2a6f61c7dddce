"""SSH execution against a real sshd: host-key policies, parallel fan-out, injection safety."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml

from vhpclib.config import Environment, HostSpec, load_inventory
from vhpclib.exceptions import HostUnreachable, RemoteError
from vhpclib.mpi import LaunchSpec, build_launch, runtime_for, shell_command
from vhpclib.remote import LocalExecutor, SshExecutor, executor_for, fan_out
from vhpclib.sshd import generate_keys, host_key_line, write_known_hosts
from vhpclib.store import REDACTED, redact_env

NASTY = ["$(touch {marker})", "`touch {marker}`", "x; touch {marker}", "a'b\"c && touch {marker} | cat",
         "$HOME ${{IFS}} * ? ~ \\n"]


def spec(hosts, address: str, **kw) -> HostSpec:
    return HostSpec(address=address, port=kw.pop("port", hosts.port), user="root", key_file=hosts.client_key, **kw)


def ssh(hosts, address: str, known_hosts: Path | None, policy: str = "strict", **kw) -> SshExecutor:
    return SshExecutor(spec(hosts, address, **kw), policy=policy, known_hosts=known_hosts, connect_timeout=5)


@pytest.fixture
def wrong_known_hosts(sshd_hosts, tmp_path) -> Path:
    """A known_hosts that holds ANOTHER key for every loopback address."""
    other = generate_keys(tmp_path / "other")
    path = tmp_path / "wrong_known_hosts"
    write_known_hosts(path, [(a, sshd_hosts.port, other.host_pub) for a in sshd_hosts.addresses])
    return path


@pytest.fixture
def marker() -> Path:
    path = Path("/tmp") / f"pwned-{uuid.uuid4().hex}"
    yield path
    assert not path.exists(), "a value was executed by a shell"


# ---------------------------------------------------------------- host keys

def test_strict_with_matching_known_hosts_connects(sshd_hosts):
    with ssh(sshd_hosts, "127.0.0.3", sshd_hosts.known_hosts) as ex:
        result = ex.run("echo $SSH_CONNECTION")
    assert result.ok and result.stdout.split()[2:] == ["127.0.0.3", str(sshd_hosts.port)]


def test_strict_refuses_a_host_whose_key_changed(sshd_hosts, wrong_known_hosts):
    with ssh(sshd_hosts, "127.0.0.2", wrong_known_hosts) as ex, pytest.raises(HostUnreachable) as info:
        ex.run("touch /tmp/should-not-run")
    assert info.value.host == "127.0.0.2"
    assert str(info.value).startswith(f"127.0.0.2: 127.0.0.2:{sshd_hosts.port}: host key does not match "
                                      f"known_hosts {wrong_known_hosts}")


def test_strict_refuses_an_unknown_host(sshd_hosts, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with ssh(sshd_hosts, "127.0.0.4", empty) as ex, pytest.raises(HostUnreachable, match="not in known_hosts"):
        ex.run("true")
    assert empty.read_text() == ""  # strict never records anything


def test_strict_without_known_hosts_uses_the_users_file(sshd_hosts, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # an empty ~/.ssh: the host is unknown
    with ssh(sshd_hosts, "127.0.0.4", None) as ex, pytest.raises(HostUnreachable,
                                                                 match="known_hosts ~/.ssh/known_hosts"):
        ex.run("true")
    (tmp_path / ".ssh").mkdir()
    write_known_hosts(tmp_path / ".ssh" / "known_hosts", [("127.0.0.4", sshd_hosts.port, sshd_hosts.keys.host_pub)])
    with ssh(sshd_hosts, "127.0.0.4", None) as ex:
        assert ex.run("echo hi").stdout == "hi\n"


def test_accept_new_records_an_unknown_key_then_enforces_it(sshd_hosts, tmp_path):
    known = tmp_path / "sub" / "known_hosts"
    with ssh(sshd_hosts, "127.0.0.5", known, policy="accept-new") as ex:
        assert ex.run("echo first").stdout == "first\n"
    line = f"[127.0.0.5]:{sshd_hosts.port} {host_key_line(sshd_hosts.keys.host_pub)}"
    assert known.read_text().splitlines() == [line]
    with ssh(sshd_hosts, "127.0.0.5", known, policy="strict") as ex:  # the recorded key is now trusted
        assert ex.run("echo again").ok
    other = generate_keys(tmp_path / "other")
    write_known_hosts(known, [("127.0.0.5", sshd_hosts.port, other.host_pub)])
    with ssh(sshd_hosts, "127.0.0.5", known, policy="accept-new") as ex, pytest.raises(
            HostUnreachable, match="host key does not match"):
        ex.run("true")  # accept-new trusts new hosts, never changed keys


def test_insecure_policy_warns_visibly(sshd_hosts, wrong_known_hosts):
    with pytest.warns(UserWarning, match="host keys are NOT verified"):
        ex = ssh(sshd_hosts, "127.0.0.6", wrong_known_hosts, policy="insecure")
    with ex:
        assert ex.run("echo in").stdout == "in\n"


def test_jump_host_keys_are_checked_too(sshd_hosts, wrong_known_hosts):
    jump = {"address": "127.0.0.1", "port": sshd_hosts.port, "user": "root", "key_file": sshd_hosts.client_key}
    with ssh(sshd_hosts, "127.0.0.7", sshd_hosts.known_hosts, jump=jump) as ex:
        # the target sees the connection coming from the jump host's side of the tunnel
        assert ex.run("echo $SSH_CONNECTION").stdout.split()[2] == "127.0.0.7"
    with ssh(sshd_hosts, "127.0.0.7", wrong_known_hosts, jump=jump) as ex, pytest.raises(HostUnreachable):
        ex.run("true")


# ---------------------------------------------------------------- fan-out

def test_fan_out_runs_eight_hosts_at_once_and_keeps_their_order(sshd_hosts):
    executors = [ssh(sshd_hosts, a, sshd_hosts.known_hosts) for a in reversed(sshd_hosts.addresses)]
    t0 = time.perf_counter()
    outcomes = fan_out(executors, "sleep 1; echo $SSH_CONNECTION")
    elapsed = time.perf_counter() - t0
    for executor in executors:
        executor.close()
    assert [o.host for o in outcomes] == list(reversed(sshd_hosts.addresses))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert [o.result.stdout.split()[2] for o in outcomes] == list(reversed(sshd_hosts.addresses))
    assert elapsed < 4.5, f"8 x 'sleep 1' took {elapsed:.1f} s: not parallel"


def test_fan_out_reports_refused_and_untrusted_hosts_while_the_others_finish(sshd_hosts, wrong_known_hosts, tmp_path):
    good = [ssh(sshd_hosts, a, sshd_hosts.known_hosts) for a in sshd_hosts.addresses[:4]]
    refused = ssh(sshd_hosts, "127.0.0.9", sshd_hosts.known_hosts)  # nothing listens on .9
    untrusted = ssh(sshd_hosts, "127.0.0.8", wrong_known_hosts)
    failing = ssh(sshd_hosts, "127.0.0.3", sshd_hosts.known_hosts, name="fails")
    local = LocalExecutor("here")
    executors = [refused, *good[:2], untrusted, local, *good[2:], failing]
    outcomes = fan_out(executors, "echo done; [ $(hostname) != x ] && exit ${CODE:-0}", env={"CODE": "0"})
    assert [o.host for o in outcomes] == [e.name for e in executors]
    by_host = {o.host: o for o in outcomes}
    assert all(by_host[e.name].ok and by_host[e.name].result.stdout == "done\n" for e in [*good, local])
    assert isinstance(by_host["127.0.0.9"].error, HostUnreachable)
    assert by_host["127.0.0.9"].error.message == f"127.0.0.9:{sshd_hosts.port}: connection refused"
    assert isinstance(by_host["127.0.0.8"].error, HostUnreachable)
    assert "host key does not match" in by_host["127.0.0.8"].error.message
    for executor in executors:
        executor.close()

    # a non-zero exit is a result with its exit code, not an error
    outcome, = fan_out([failing], "echo out; echo err >&2; exit 3")
    assert outcome.error is None and not outcome.ok
    assert (outcome.result.exit_code, outcome.result.stdout, outcome.result.stderr) == (3, "out\n", "err\n")
    failing.close()


def test_fan_out_times_out_a_hung_host_with_exit_124(sshd_hosts):
    executors = [ssh(sshd_hosts, a, sshd_hosts.known_hosts) for a in sshd_hosts.addresses[:2]]
    outcomes = fan_out(executors, "sleep 8", timeout=1.5)  # sleep lingers remotely: keep it short
    assert [o.result.exit_code for o in outcomes] == [124, 124]
    assert "timed out" in outcomes[0].result.stderr
    for executor in executors:
        executor.close()


def test_fan_out_of_the_same_host_twice_reports_both(sshd_hosts):
    a = ssh(sshd_hosts, "127.0.0.2", sshd_hosts.known_hosts, name="one")
    b = ssh(sshd_hosts, "127.0.0.2", sshd_hosts.known_hosts, name="two")
    outcomes = fan_out([a, b, a], "echo x")
    assert [o.host for o in outcomes] == ["one", "two", "one"] and all(o.ok for o in outcomes)
    a.close()
    b.close()


def test_run_raises_remote_error_with_output_on_failure(sshd_hosts):
    with ssh(sshd_hosts, "127.0.0.2", sshd_hosts.known_hosts) as ex, pytest.raises(RemoteError) as info:
        ex.run("echo oops >&2; exit 7")
    assert info.value.returncode == 7 and "oops" in str(info.value)


def test_put_and_get_over_sftp(sshd_hosts, tmp_path):
    with ssh(sshd_hosts, "127.0.0.2", sshd_hosts.known_hosts) as ex:
        remote = str(tmp_path / "remote dir" / "file.txt")
        ex.put_text("payload $(id)\n", remote)
        ex.get(remote, tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "payload $(id)\n"


# ---------------------------------------------------------------- injection

@pytest.mark.parametrize("template", NASTY)
def test_env_values_reach_the_program_literally_over_ssh(sshd_hosts, marker, template):
    value = template.format(marker=marker)
    with ssh(sshd_hosts, "127.0.0.2", sshd_hosts.known_hosts) as ex:
        result = ex.run('printf "%s" "$EVIL"', env={"EVIL": value})
    assert result.stdout == value


def test_env_values_through_fan_out_execute_nothing(sshd_hosts, marker):
    value = f"$(touch {marker}); `touch {marker}`"
    executors = [ssh(sshd_hosts, a, sshd_hosts.known_hosts) for a in sshd_hosts.addresses[:3]] + [LocalExecutor()]
    outcomes = fan_out(executors, 'printf "%s" "$EVIL"', env={"EVIL": value})
    assert [o.result.stdout for o in outcomes] == [value] * 4
    for executor in executors:
        executor.close()


def test_inventory_mpi_env_values_reach_an_mpi_program_literally(sshd_hosts, marker, tmp_path):
    value = f"$(touch {marker});`touch {marker}`;x"
    data = sshd_hosts.inventory_data(sshd_hosts.addresses[:1])
    data["environments"]["ssh"]["mpi"]["env"] = {"EVIL": value}
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(data))
    inventory = load_inventory(path)
    env: Environment = inventory.environments["ssh"]
    assert env.mpi.env == {"EVIL": value}
    argv, launch_env = build_launch(runtime_for(env), LaunchSpec(nprocs=1), ["/usr/bin/printenv", "EVIL"])
    with executor_for(env.launch_host, env, inventory) as ex:
        result = ex.run(shell_command(argv), env=launch_env, timeout=120)
    assert result.stdout == value + "\n"


def test_secret_looking_variables_are_redacted():
    env = {"AWS_SECRET_ACCESS_KEY": "s3", "GITHUB_TOKEN": "t", "DB_PASSWORD": "p", "SSH_KEY": "k",
           "PATH": "/bin", "I_MPI_DEBUG": "4", "OMP_NUM_THREADS": "2"}
    assert redact_env(env) == {"AWS_SECRET_ACCESS_KEY": REDACTED, "GITHUB_TOKEN": REDACTED, "DB_PASSWORD": REDACTED,
                               "SSH_KEY": REDACTED, "PATH": "/bin", "I_MPI_DEBUG": "4", "OMP_NUM_THREADS": "2"}
