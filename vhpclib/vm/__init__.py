"""QEMU guests vHPC builds, boots, measures and removes (``vhpc vm``)."""
