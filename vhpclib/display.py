"""Show a plotly figure in a notebook so that both JupyterLab and the offline HTML report render it.

JupyterLab renders plotly's own mimetype; nbconvert cannot, so the same output
also carries self-contained HTML (plotly.js inlined once per kernel, no CDN).
"""

from __future__ import annotations

import plotly.graph_objects as go

_plotlyjs_sent = False


def show(fig: go.Figure | None) -> None:
    """Display ``fig`` with both the plotly mimetype and offline HTML (None: say there is nothing to show)."""
    global _plotlyjs_sent
    from IPython.display import display

    if fig is None:
        print("no measurements for this figure in this campaign")
        return
    html = fig.to_html(full_html=False, include_plotlyjs=not _plotlyjs_sent, config={"responsive": True})
    _plotlyjs_sent = True
    display({"application/vnd.plotly.v1+json": fig.to_plotly_json(), "text/html": html}, raw=True)
