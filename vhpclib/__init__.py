"""vHPC: measure what virtualization costs an HPC cluster, reproducibly."""

__version__ = "0.1.0"
