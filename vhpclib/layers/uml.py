"""User-mode Linux: a Linux kernel running as a process, booted once per command, then powered off.

The disk is an ext4 file made from the layer tree (``~/.cache/vhpc/layers/uml-<key>.img``, read-only);
every boot writes to a copy-on-write file of its own (``ubd0=COW,DISK``), so the cache is never
written. The init baked into the disk mounts what the command needs from the host through hostfs at
the same paths (the run's folder, the environment's work folder), restores the job's variables,
runs the command with its output to files the host side prints after power-off, and powers off with
sysrq. Boot, command and power-off take ~2.4 s here. One vCPU: UML has no SMP.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..exceptions import LayerUnavailable
from .image import LayerRoot, cache_root
from .podman import HOST_ONLY, require

#: At the root: /sbin is a symlink in Debian 12 (merged /usr), and debugfs writes no file through it.
INIT_PATH = "/vhpc-uml-init"
#: Intel MPI inside UML: the default pinning asserts (no CPU topology), Hydra's hwloc probe too, and two ranks
#: sharing the one vCPU measure a scheduler tick (~10 ms) unless they sleep between polls. Forced by the init
#: after the job's own variables, so they always hold; every run record lists them (``run_facts``).
MPI_SETTINGS: dict[str, str] = {"I_MPI_PIN": "0", "I_MPI_HYDRA_TOPOLIB": "ipl", "I_MPI_THREAD_YIELD": "3",
                                "I_MPI_SPIN_COUNT": "1"}

# Runs as PID 1 inside UML. `vhpcdir=` on the kernel command line reaches it as a variable (the kernel
# passes unknown name=value parameters to init's environment).
INIT_SCRIPT = r"""#!/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o size=${vhpcshm:-1024}m shm /dev/shm
mount -t tmpfs tmp /tmp
echo 1 > /proc/sys/kernel/sysrq
d="$vhpcdir"
mkdir -p "$d" && mount -t hostfs -o "$d" none "$d"
while IFS= read -r m; do mkdir -p "$m" && mount -t hostfs -o "$m" none "$m"; done < "$d/mounts"
hostname vhpc-uml
. "$d/env"
for v in $(cat "$d/unset"); do unset "$v"; done
PATH="${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOME=/root
export PATH HOME
. "$d/force"
cd "$(cat "$d/cwd")" 2>/dev/null || cd /
/bin/sh "$d/cmd" > "$d/out" 2> "$d/err"
echo $? > "$d/rc"
sync
echo o > /proc/sysrq-trigger
sleep 60
"""


def linux_binary() -> str:
    return require("linux", "user-mode-linux", "the user-mode Linux layer")


def disk_path(root: LayerRoot) -> Path:
    """One disk per layer tree and init script (a changed init makes a new disk)."""
    import hashlib

    return cache_root() / f"uml-{root.key}-{hashlib.sha256(INIT_SCRIPT.encode()).hexdigest()[:8]}.img"


def ensure_disk(root: LayerRoot, size: str = "4G") -> Path:
    """The UML disk of ``root`` (ext4 made from the tree, with the init), made once and read-only."""
    final = disk_path(root)
    if final.is_file():
        return final
    for tool, pkg in (("mkfs.ext4", "e2fsprogs"), ("debugfs", "e2fsprogs")):
        require(tool, pkg, "making the user-mode Linux disk")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}-", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    script = tmp.with_suffix(".init")
    try:
        script.write_text(INIT_SCRIPT)
        steps = [["truncate", "-s", size, str(tmp)],
                 ["mkfs.ext4", "-q", "-F", "-L", "vhpc-uml", "-d", str(root.tree), str(tmp)],
                 ["debugfs", "-w", "-R", f"write {script} {INIT_PATH.lstrip('/')}", str(tmp)],
                 ["debugfs", "-w", "-R", f"set_inode_field {INIT_PATH} mode 0100755", str(tmp)]]
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                said = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                raise LayerUnavailable(f"cannot make the user-mode Linux disk: {argv[0]}: {said}", file=str(final))
        written = subprocess.run(["debugfs", "-R", f"cat {INIT_PATH}", str(tmp)], capture_output=True, text=True,
                                 timeout=60, stdin=subprocess.DEVNULL)
        if written.stdout != INIT_SCRIPT:
            raise LayerUnavailable("cannot make the user-mode Linux disk: its init was not written", file=str(final))
        tmp.chmod(0o444)
        os.rename(tmp, final)
    finally:
        script.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return final


def boot_command(disk: Path, command: str, *, mounts: Sequence[str], memory_mib: int, shm_mib: int,
                 cpu: int | None, timeout_note: str = "") -> str:
    """Shell (run in the job's folder, with the job's variables) that boots UML, runs ``command`` and prints
    its output; exits with the command's status (125 when UML ended without one)."""
    linux = linux_binary()
    unset = " ".join(HOST_ONLY)
    force = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in MPI_SETTINGS.items())
    pin = f"taskset -c {int(cpu)} " if cpu is not None else ""
    mount_lines = "".join(f"{m}\n" for m in mounts)
    made = " ".join(shlex.quote(m) for m in mounts)
    script = (
        f'mkdir -p {made} && d=$(mktemp -d /tmp/vhpc-uml.XXXXXX) || exit 125; '
        "trap 'rm -rf \"$d\"' EXIT; trap 'exit 143' TERM HUP INT; "
        'export -p > "$d/env"; '
        f'printf %s {shlex.quote(unset)} > "$d/unset"; '
        f'printf %s {shlex.quote(force)} > "$d/force"; '
        f'printf %s {shlex.quote(mount_lines)} > "$d/mounts"; '
        'printf "%s\\n" "$PWD" > "$d/cwd"; '
        f'printf "%s\\n" {shlex.quote(command)} > "$d/cmd"; '
        f'{pin}{shlex.quote(linux)} mem={int(memory_mib)}M ubd0="$d/cow",{shlex.quote(str(disk))} root=/dev/ubda rw '
        f'init={INIT_PATH} uml_dir="$d" umid=vhpc vhpcdir="$d" vhpcshm={int(shm_mib)} quiet con=null con0=null,fd:1 '
        '> "$d/console" 2>&1 < /dev/null; '
        'cat "$d/out" 2>/dev/null; cat "$d/err" >&2 2>/dev/null; '
        'if [ -s "$d/rc" ]; then exit "$(cat "$d/rc")"; fi; '
        'echo "vhpc: user-mode Linux ended without the command'"'"'s exit status; its console:" >&2; '
        'tail -n 5 "$d/console" >&2; exit 125'
    )
    # /bin/sh (dash), whatever shell runs this: the init reads the variables back in the format dash's
    # `export -p` writes (bash's is `declare -x`, which dash cannot read).
    return f"exec /bin/sh -c {shlex.quote(script)}"


def pinned_cpus(cpu: int | None) -> list[int] | None:
    """The CPUs a process started as the UML kernel is (``taskset -c CPU``) may run on, as the kernel says."""
    from .podman import cpu_list

    argv = (["taskset", "-c", str(cpu)] if cpu is not None else []) + ["grep", "Cpus_allowed_list", "/proc/self/status"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        return cpu_list(done.stdout.split(":", 1)[1]) if done.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
