"""Figures: one style (``style``), writing them (``export``), the paper's artifacts (``paper``), and which
stage feeds which artifact (``artifacts``).

Names are resolved on first use, so a caller that only copies cached exports (the report pipeline)
does not pay for importing pandas and plotly.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "DEFAULT_FORMATS": "export", "export_session": "export", "figure_title": "export", "find_browser": "export",
    "save_figure": "export", "save_figures": "export",
    "figure2_throughput": "paper", "figure3_npb": "paper", "figure4_blockss": "paper", "section23_io": "paper",
    "table2_figure": "paper", "table3_figure": "paper",
    "ENV_COLOURS": "style", "NOT_MEASURED": "style", "PAPER_MARKER": "style", "TEMPLATE": "style",
    "env_colour": "style",
}
__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
