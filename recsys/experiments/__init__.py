"""A/B tests and interleaving: configuration, assignment, statistics, analysis."""
