"""Widgets: each renders plain values handed to it; none of them fetches anything."""
