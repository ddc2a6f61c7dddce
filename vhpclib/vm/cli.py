"""``vhpc vm build|up|status|down``: QEMU guests as environments (root).

Only prints; errors are raised as ``VhpcError`` and turned into one line and
an exit code by ``vhpclib.cli.main``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

vm_app = typer.Typer(no_args_is_help=True, help="QEMU/KVM guests vHPC builds, boots and measures (root).")

NameOpt = typer.Option(..., "--name", help="Guest name (1-20 of a-z, 0-9, '-').")


def _map_text(vcpu_map: dict | None) -> str:
    if not vcpu_map:
        return "-"
    from .pinning import format_cpu_list

    return " ".join(f"vcpu{v}->{format_cpu_list(c)}" for v, c in sorted(vcpu_map.items(), key=lambda i: int(i[0])))


ImageOpt = typer.Option(None, "--image",
                        help="Use your own qcow2 cloud image (cloud-init NoCloud) instead of building.")


@vm_app.command("build")
def vm_build(image: Optional[Path] = ImageOpt) -> None:
    """Build (or find cached) the Debian guest image with Intel MPI, IMB and blockss installed."""
    import time

    from .image import build_image, user_image

    started = time.perf_counter()
    guest = user_image(image) if image is not None else build_image()
    took = time.perf_counter() - started
    state = "cached" if guest.cached else ("registered" if guest.kind == "user" else "built")
    print(f"image: {guest.disk} ({guest.kind}, {guest.disk_format}, {state} in {took:.1f} s)")
    if guest.kernel:
        print(f"kernel: {guest.kernel}  initrd: {guest.initrd}")
    payload = guest.provisioned
    if payload:
        print(f"installed: {payload['mpi']}, {', '.join(payload['wheels'])} in {payload['guest_prefix']}")
    print(f"cache: {guest.folder}")


@vm_app.command("up")
def vm_up(name: str = NameOpt,
          vcpus: int = typer.Option(2, "--vcpus", help="Virtual CPUs (one socket)."),
          memory: int = typer.Option(2048, "--memory", help="Memory in MiB."),
          accel: str = typer.Option("auto", "--accel", help="auto (KVM only where it really boots), kvm or tcg."),
          pin: str = typer.Option("none", "--pin", help="Host CPU per vCPU, e.g. 0,1; or none (host scheduler)."),
          passthrough: Optional[list[str]] = typer.Option(None, "--passthrough",
                                                          help="PCI device (bus:slot.fn) to assign with VFIO."),
          image: Optional[Path] = typer.Option(None, "--image", help="Boot your own qcow2 cloud image instead."),
          timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for the guest's SSH.")) -> None:
    """Boot a guest, pin its vCPUs, wait for SSH and write inventories/vm-<name>.yml."""
    from .lifecycle import up

    info = up(name, vcpus=vcpus, memory_mib=memory, accel=accel, pin=pin, passthrough=passthrough or (),
              image_file=image, ready_timeout=timeout)
    print(f"{info.name}: qemu pid {info.pid}, {info.vmm} ({info.accel_reason})")
    print(f"vcpus: {info.vcpus} {'pinned' if info.pinned else 'scheduler'} {_map_text(info.vcpu_map)}")
    print(f"ssh: root@127.0.0.1 -p {info.ssh_port}")
    print(f"inventory: {info.inventory} (environment {info.environment})")
    print(f"up in {info.ready_s:.1f} s")


@vm_app.command("status")
def vm_status() -> None:
    """Show every guest: QEMU PID, accelerator and why, vCPU pinning read back now, SSH port."""
    from .lifecycle import require_root, status

    require_root("status")
    guests = status()
    if not guests:
        print("no guests")
        return
    failed = False
    for g in guests:
        print(f"{g.name}: {'running' if g.running else 'NOT RUNNING'} pid={g.pid} accel={g.accel} "
              f"vcpus={g.vcpus} {'pinned' if g.pinned else 'scheduler'} {_map_text(g.vcpu_map)} "
              f"ssh=127.0.0.1:{g.ssh_port}{'' if g.port_listening else ' (closed)'} inventory={g.inventory}")
        print(f"  accel reason: {g.accel_reason}")
        for problem in g.problems:
            print(f"  problem: {problem}")
            failed = True
    if failed:
        raise typer.Exit(1)


@vm_app.command("down")
def vm_down(name: str = NameOpt) -> None:
    """Power the guest off (killing it if needed) and remove what up created; never the cached image."""
    from .lifecycle import down

    removed = down(name)
    for item in removed:
        print(f"removed {item}")
    if not removed:
        print("nothing to remove")
