"""Offline evaluation: vectorised ranking metrics and the top-N protocol."""
