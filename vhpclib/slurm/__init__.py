"""Slurm: settings, a private cluster for tests and the testbed, batch jobs, fingerprints through srun."""

from .. import config as _config  # noqa: F401  (loads HostSpec before .settings needs it)
from .settings import SlurmSettings

__all__ = ["SlurmSettings"]
