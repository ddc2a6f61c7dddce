"""Workload plugins: one class per benchmark, registered once (see ``base.Workload`` for the protocol).

Adding a workload is one module here (or in your own package: ``register_workload``
works from anywhere, a test included), its fixtures and its tests.
"""

from .base import (WORKLOADS, Column, Extracted, NoParams, Point, Section, Skip, Watch, Workload, get_workload,
                   register_workload, unregister_workload, workload_names, workload_of)
from .blockss import Blockss
from .npb import NpbMz
from .pingpong import PingPong
from .pingpong_levels import PingPongLevels

__all__ = ["WORKLOADS", "Column", "Extracted", "NoParams", "Point", "Section", "Skip", "Watch", "Workload",
           "get_workload", "register_workload", "unregister_workload", "workload_names", "workload_of", "PingPong",
           "PingPongLevels", "Blockss", "NpbMz"]

# The built-in workloads, registered in one block (papermill fills its engine registry the same way).
register_workload(PingPong())
register_workload(PingPongLevels())
register_workload(Blockss())
register_workload(NpbMz())
