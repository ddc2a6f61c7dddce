"""The study's stages: microbenchmarks, single-node overhead, scaling.

Each stage is one library function that the CLI and the notebooks call alike.
"""
