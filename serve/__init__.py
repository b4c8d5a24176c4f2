"""Deployment glue: Ray Serve router and Triton model repository.

Imports recsys, never the reverse.
"""
