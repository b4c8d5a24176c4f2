"""Ranking: features, the ranker model, its training and its export for serving.

Submodules import their own heavy dependencies (torch, onnx); import them directly, e.g.
``from recsys.ranking.export import export_onnx``.
"""
