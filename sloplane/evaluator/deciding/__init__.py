"""Deciding: the decision pipeline and its release-aware steps (freezes, attribution, deployments)."""
