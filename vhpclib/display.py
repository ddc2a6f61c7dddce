"""Show figures and report sections in a notebook so that JupyterLab and the offline HTML report both render them.

JupyterLab renders plotly's own mimetype (the jupyterlab-plotly extension); the
report (nbconvert, ``vhpclib/templates/vhpc-report``) renders the HTML part and
loads plotly.js once, from ``plotly.min.js`` beside the report. So the HTML part
carries no plotly.js: an executed notebook stays small, and the report folder
holds one copy of plotly.js for every figure.
"""

from __future__ import annotations

import plotly.graph_objects as go


def show(fig: go.Figure | None) -> None:
    """Display ``fig`` with both the plotly mimetype and its HTML (None: say there is nothing to show)."""
    from IPython.display import display

    if fig is None:
        print("no measurements for this figure in this campaign")
        return
    html = fig.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True})
    display({"application/vnd.plotly.v1+json": fig.to_plotly_json(), "text/html": html}, raw=True)


def show_html(text: str) -> None:
    """Display a report section (an HTML fragment built by ``vhpclib.report``)."""
    from IPython.display import HTML, display

    display(HTML(text))
