"""The daily retrain: export the log, train from it, gate against the serving version,
publish (``python -m recsys.retrain``)."""
