"""Deployment glue: Ray Serve router and Triton model repository (imports recsys, never the reverse)."""
