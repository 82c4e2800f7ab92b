"""Bundled demo model (a small digits CNN) used by edgekit's examples and tests."""
