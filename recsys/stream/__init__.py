"""``python -m recsys.stream``: run the stream processor, replay, backfill, inspect the log."""
