"""HPO Studio's Streamlit UI: thin screens that read the storage and render; ``core`` does the work.

Public surface: the page files the router (``streamlit_app.py``) lists, by path relative to
the project root (the form ``st.switch_page`` and ``st.page_link`` take).
"""

PAGE_CONFIGURE = "app/views/configure.py"
PAGE_TRIALS = "app/views/trials.py"
PAGE_HEALTH = "app/views/health.py"
PAGE_LEARN = "app/views/learn.py"
# Written separately; the router lists it only once the file exists.
PAGE_VIEWER = "app/views/viewer.py"

__all__ = ["PAGE_CONFIGURE", "PAGE_TRIALS", "PAGE_HEALTH", "PAGE_LEARN", "PAGE_VIEWER"]
