"""Candidate sources: models that score the whole catalog for a user (retrieval stage)."""
