"""Dashboard definitions: plotly figures (figures.py) and the page layout (pages.py)."""
