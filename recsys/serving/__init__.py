"""The online request path: state, artefacts, filters, rerank, explanations."""
