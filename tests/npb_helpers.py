"""Shared by the NPB tests: the venv's Fortran MPI wrapper and a one-host local environment."""

from vhpclib.config import Environment, default_mpi_prefix, parse_inventory

MPIF90 = default_mpi_prefix() / "bin" / "mpif90"
LOCAL_INVENTORY = """
environments:
  local:
    label: Local
    hosts: [{local: true}]
"""


def local_environment() -> Environment:
    return parse_inventory(LOCAL_INVENTORY).environment("local")
