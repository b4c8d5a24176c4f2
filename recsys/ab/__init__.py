"""Experiments as a user runs them: ``python -m recsys.ab`` (the report from the event log) and
the user simulator that validates the statistics (``recsys.ab.simulator``)."""
