"""HPO Studio: the Streamlit entry point (``streamlit run streamlit_app.py``).

A router only: it lists the screens in ``app/views`` and runs the one the user picked.
Screens live in ``app/views`` (not ``pages/``: that name switches on Streamlit's legacy
file-based pages, DESIGN.md).
"""

from pathlib import Path

from app import serve

serve.wait()  # `make run` imports the screens' modules as the server starts: never alongside it

import streamlit as st  # noqa: E402

from app import PAGE_CONFIGURE, PAGE_HEALTH, PAGE_LEARN, PAGE_TRIALS, PAGE_VIEWER, state
from app.scene_component import warm_up as warm_up_scenes
from app.widgets import render_study_notices

ROOT = Path(__file__).resolve().parent

# A file, not ":material/tune:": Streamlit's page turns a material icon into a fonts.gstatic.com
# URL, which fails on every page offline; a file is served by the app itself (/media/...).
st.set_page_config(page_title="HPO Studio", page_icon=str(ROOT / "app" / "favicon.svg"), layout="wide")
state.setup_logs()  # one log for the app, the CLI and the workers: logs/hpo.log
state.apply_secret_flags()
state.ensure_demo()  # hosted demo: the example study exists from the first page view

pages = [
    st.Page(PAGE_CONFIGURE, title="Configure", icon=":material/tune:", default=True),
    st.Page(PAGE_TRIALS, title="Trials", icon=":material/grid_view:"),
    st.Page(PAGE_HEALTH, title="Health", icon=":material/monitor_heart:"),
    st.Page(PAGE_LEARN, title="Learn", icon=":material/school:"),
    st.Page(PAGE_VIEWER, title="3D viewer", icon=":material/view_in_ar:"),
]

page = st.navigation(pages, position="top")
render_study_notices()  # a toast, on whatever screen, when a study this tab saw running finishes or fails
try:
    page.run()
finally:
    # PyVista and the scene serialiser load in the background, before the first 3D view: started
    # after the page, so the first page after a server start does not share the CPU and the GIL
    # with it (on a 2-core machine that delayed its heading by ~0.8-1 s, bench/bench_viewer.py).
    # `make run`'s head start does it (and builds the newest studies' scenes); plain
    # `streamlit run` has none.
    if not serve.page_done():
        warm_up_scenes()
