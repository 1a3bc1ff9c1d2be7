"""One file per screen, run by ``st.navigation`` (not a ``pages/`` folder: that name turns on
Streamlit's legacy file-based pages and hides the navigation titles, DESIGN.md)."""
