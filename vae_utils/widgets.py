"""Widgets: ipywidgets to explore a trained model (grown by notebook 04). Not imported by the core."""
