"""podman with a private store, an explicit OCI runtime, and nothing left behind.

Every call goes through one argv prefix: ``--root``/``--runroot``/``--tmpdir`` under vHPC's cache (the
system's containers and images are never seen or touched), ``--cgroup-manager cgroupfs``, no event log,
and the runtime by absolute path (runc: crun refuses this machine's hybrid cgroups; runsc for gVisor).
Containers run with ``--network none`` or a namespace node's network (``ns:/run/netns/NAME``), neither
of which adds iptables or nft rules.
"""

from __future__ import annotations

import resource
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import LayerUnavailable
from .image import LayerRoot, cache_root

#: Images vHPC imports are called this; anything else in the private store is not ours to keep.
IMAGE_REPO = "localhost/vhpc-layer"
NPROC_MAX = 32768
#: Every container vHPC starts carries this label (leftovers are found by it, never by a broad name).
LABEL = "org.vhpc.layer"
# Variables a job's environment must not carry into a layer: they describe the host's shell, its
# Python or its files, not the job.
HOST_ONLY = ("HOME", "HOSTNAME", "PWD", "OLDPWD", "SHLVL", "TERM", "USER", "LOGNAME", "SHELL", "_",
             "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "LD_PRELOAD", "MAIL",
             "container", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "XDG_RUNTIME_DIR", "TZ")


def require(program: str, package: str, what: str) -> str:
    """Absolute path of ``program``, or ``LayerUnavailable`` naming the Debian package to install."""
    found = shutil.which(program)
    if found is None:
        raise LayerUnavailable(f"{what} needs `{program}`, which is not installed: apt-get install {package}",
                               package=package)
    return found


def forward_env_snippet() -> str:
    """Shell that appends ``-e NAME`` for every variable of the current environment a job owns.

    Names only: podman takes each value from its own environment, so no value (a secret) ever appears
    on a command line.
    """
    skip = "|".join(HOST_ONLY)
    return ("set --; for n in $(env | sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p'); do "
            f"case $n in {skip}) ;; *) set -- \"$@\" -e \"$n\";; esac; done")


@dataclass(frozen=True)
class Podman:
    """podman bound to vHPC's private store and one OCI runtime."""

    runtime: str = "runc"  # program name; its Debian package is the same name
    runtime_flags: tuple[str, ...] = ()
    store: Path = field(default_factory=lambda: cache_root() / "podman")

    def argv(self) -> list[str]:
        podman = require("podman", "podman", "a container layer")
        runtime = require(self.runtime, self.runtime, f"the {self.runtime} runtime")
        out = [podman, "--root", str(self.store / "root"), "--runroot", str(self.store / "run"),
               "--tmpdir", str(self.store / "tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "none",
               "--runtime", runtime]
        for flag in self.runtime_flags:
            out += ["--runtime-flag", flag]
        return out

    def shell(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv())

    def call(self, args: Sequence[str], *, what: str, timeout: float = 120.0, check: bool = True,
             stdin=None) -> subprocess.CompletedProcess:  # noqa: ANN001 - a file or None
        try:
            done = subprocess.run([*self.argv(), *args], capture_output=True, text=True, timeout=timeout,
                                  stdin=stdin if stdin is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise LayerUnavailable(f"{what}: podman did not answer within {timeout:.0f} s") from None
        if check and done.returncode != 0:
            said = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise LayerUnavailable(f"{what} failed: {said}")
        return done

    # ------------------------------------------------------------------ image

    def image_tag(self, root: LayerRoot) -> str:
        return f"{IMAGE_REPO}:{root.key}"

    def ensure_image(self, root: LayerRoot) -> str:
        """The layer tree as a podman image (imported once, ~10 s); other vHPC images in the store are removed."""
        tag = self.image_tag(root)
        if self.call(["image", "exists", tag], what="looking for the layer image", check=False).returncode != 0:
            tar = subprocess.Popen(["tar", "-C", str(root.tree), "--numeric-owner", "-cf", "-", "."],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                self.call(["import", "--quiet", "-", tag], what="importing the layer image", timeout=900,
                          stdin=tar.stdout)
            finally:
                assert tar.stdout is not None
                tar.stdout.close()
                tar.wait()
        listed = self.call(["images", "--format", "{{.Repository}}:{{.Tag}}"], what="listing images").stdout
        for other in listed.split():
            if other.startswith(IMAGE_REPO + ":") and other != tag and not self.containers(image=other):
                self.call(["rmi", "--force", other], what=f"removing the old image {other}", check=False)
        return tag

    # ------------------------------------------------------------------ containers

    def containers(self, *, name_prefix: str | None = None, image: str | None = None) -> list[str]:
        """Names of vHPC's containers in the private store (running or not)."""
        args = ["ps", "--all", "--format", "{{.Names}} {{.Image}}", "--filter", f"label={LABEL}"]
        out = self.call(args, what="listing containers", check=False).stdout
        names = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) != 2:
                continue
            if (name_prefix is None or parts[0].startswith(name_prefix)) and (image is None or parts[1] == image):
                names.append(parts[0])
        return names

    def start(self, name: str, image: str, *, cpus: Sequence[int] | None, mounts: Sequence[str], hostname: str,
              shm_mib: int, network: str = "none", memory_mib: int | None = None,
              command: Sequence[str] = ("sleep", "infinity")) -> None:
        """Start a long-running container ``name`` (its PID 1 sleeps, or serves ``command``, e.g. an sshd; jobs
        enter with ``exec`` or over SSH)."""
        self.remove(name)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # runc cannot set this machine's nproc hard limit (96367: "operation not permitted"); 32768 works.
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], NPROC_MAX)
        args = ["run", "--detach", "--name", name, "--label", f"{LABEL}=1", "--hostname", hostname,
                "--network", network, "--shm-size", f"{shm_mib}m",
                # podman raises open files past this machine's hard limit unless told: keep the host's.
                "--ulimit", f"nofile={_limit(nofile)}:{_limit(nofile)}",
                "--ulimit", f"nproc={_limit(nproc)}:{_limit(nproc)}"]
        if cpus:
            args += ["--cpuset-cpus", ",".join(map(str, cpus))]
        if memory_mib:
            args += ["--memory", f"{memory_mib}m"]
        for folder in mounts:
            Path(folder).mkdir(mode=0o700, parents=True, exist_ok=True)
            args += ["--volume", f"{folder}:{folder}:rw"]
        try:
            self.call([*args, image, *command], what=f"starting container {name}", timeout=120)
        except LayerUnavailable:
            self.remove(name)  # a container created but not started is still a leftover
            raise

    def remove(self, name: str) -> None:
        """Stop and remove ``name`` if it exists (its processes die with it)."""
        self.call(["rm", "--force", "--time", "0", name], what=f"removing container {name}", check=False,
                  timeout=120)

    def exec_capture(self, name: str, command: str, timeout: float = 60.0) -> str:
        return self.call(["exec", name, "sh", "-c", command], what=f"reading container {name}",
                         timeout=timeout).stdout

    def exec_command(self, name: str, command: str) -> str:
        """Shell that runs ``command`` in container ``name`` in the caller's folder with the job's variables."""
        # The caller's folder is mounted at its own path when it is a run folder; other commands start in /.
        inner = 'cd "$0" 2>/dev/null || cd /; ' + command
        return (f"{forward_env_snippet()}; exec {self.shell()} exec \"$@\" "
                f"{shlex.quote(name)} sh -c {shlex.quote(inner)} \"$PWD\"")


def _limit(value: int) -> str:
    return "-1" if value == resource.RLIM_INFINITY else str(value)


def cpu_list(text: str) -> list[int]:
    """``0-2,5`` -> [0, 1, 2, 5] (the kernel's list format)."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        out += list(range(int(first), int(last or first) + 1))
    return sorted(out)


def read_back(podman: Podman, name: str) -> dict:
    """A container as the host kernel sees it: running, PID 1, the CPUs PID 1 may run on, the cpuset asked."""
    fmt = "{{.State.Running}} {{.State.Pid}} {{.HostConfig.CpusetCpus}}|{{range .Mounts}}{{.Destination}} {{end}}"
    done = podman.call(["inspect", "--format", fmt, name], what=f"inspecting container {name}", check=False)
    head, _, mounted = done.stdout.partition("|")
    parts = head.split()
    if done.returncode != 0 or len(parts) < 2:
        return {"running": False}
    running, pid = parts[0] == "true", int(parts[1]) if parts[1].isdigit() else 0
    out: dict = {"running": running, "pid": pid, "cpuset_asked": parts[2] if len(parts) > 2 else "",
                 "mounts": sorted(mounted.split())}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out["cpus"] = cpu_list(line.split(":", 1)[1])
    except (OSError, ValueError):
        out["cpus"] = None
    return out


def container_pids(podman: Podman, name: str) -> set[int]:
    """PIDs in the cgroup of container ``name``'s PID 1 (the container's processes; with runsc, its sandbox)."""
    pid = read_back(podman, name).get("pid")
    if not pid:
        return set()
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return set()
    for line in lines:  # cgroup v1 "N:pids:/path" (or "N:cpu,cpuacct:/path"), v2 "0::/path"
        _, controllers, path = line.split(":", 2)
        for folder in (f"/sys/fs/cgroup/{controllers}{path}", f"/sys/fs/cgroup/unified{path}",
                       f"/sys/fs/cgroup{path}"):
            procs = Path(folder) / "cgroup.procs"
            if controllers in ("pids", "cpu,cpuacct", "") and procs.is_file():
                try:
                    return {int(p) for p in procs.read_text().split()} | {pid}
                except (OSError, ValueError):
                    continue
    return {pid}


def gvisor_evidence(evidence: dict[str, str | None]) -> bool:
    """gVisor's boot message in its dmesg, or its fixed 4.4.0 kernel release inside a podman sandbox."""
    return bool(evidence.get("layer_gvisor_dmesg")) or (
        evidence.get("layer_kernel_release") == "4.4.0" and bool(evidence.get("layer_containerenv")))
