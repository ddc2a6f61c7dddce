"""Figures: one style (``style``), writing them (``export``), the paper's artifacts (``paper``), and which
stage feeds which artifact (``artifacts``)."""

from .export import DEFAULT_FORMATS, export_session, figure_title, find_browser, save_figure
from .paper import figure2_throughput, figure3_npb, figure4_blockss, section23_io, table2_figure, table3_figure
from .style import ENV_COLOURS, NOT_MEASURED, PAPER_MARKER, TEMPLATE, env_colour

__all__ = ["DEFAULT_FORMATS", "export_session", "figure_title", "find_browser", "save_figure",
           "figure2_throughput", "figure3_npb", "figure4_blockss", "section23_io", "table2_figure", "table3_figure",
           "ENV_COLOURS", "NOT_MEASURED", "PAPER_MARKER", "TEMPLATE", "env_colour"]
