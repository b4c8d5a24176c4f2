"""Ranker training: the per-worker loop (TorchRec DMP), and its local / Ray Train launchers."""
