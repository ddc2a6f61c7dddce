"""Machinery of the layers that run guest code natively on this machine: containers (podman + runc),
user-mode Linux and gVisor (runsc).

The providers (``vhpclib.providers.container``, ``.uml``, ``.gvisor``) own what an inventory says and
how a job enters the layer; this package owns the heavy parts they share: the root filesystem built
from the QEMU guest's debootstrap base with the workloads inside (``image``), podman with a private
store (``podman``), and a user-mode Linux boot that runs one command and powers off (``uml``).
Nothing here is imported when an inventory is validated.
"""
