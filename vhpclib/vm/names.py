"""The names a QEMU guest is known by: the guest-name pattern and the accelerators (the one list of each).

The QEMU provider's inventory section (``vhpclib.providers.qemu``) and ``vhpc vm`` both take them from here,
so the guest machinery never imports its provider.
"""

#: A guest's name becomes a host name, a QEMU name and a folder name (``vhpc vm up --name``).
GUEST_NAME = r"^[a-z][a-z0-9-]{0,19}$"
#: Accelerators ``vhpc vm up --accel`` and the inventory's ``vm.accel`` take (the one list of them).
ACCELS = ("auto", "kvm", "tcg")
