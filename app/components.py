"""The names the screens have always imported as ``app.components``, now kept in three modules:

* :mod:`app.format`: formatters and small pure rules (no Streamlit),
* :mod:`app.figures`: Plotly figure builders (no Streamlit),
* :mod:`app.widgets`: ``render_*`` helpers and navigation (Streamlit).

New code may import from those modules directly.
"""

from __future__ import annotations

from app.figures import *  # noqa: F401,F403
from app.figures import _layout, _numeric_param  # noqa: F401
from app.format import *  # noqa: F401,F403
from app.format import _MARKDOWN_SPECIAL, _curve, _finished_count  # noqa: F401
from app.widgets import *  # noqa: F401,F403
from app.widgets import _read_bytes, _watch_finished  # noqa: F401
