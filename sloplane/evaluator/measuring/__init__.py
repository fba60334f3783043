"""Measuring: metric backends, the batched planner, caches, periods and exclusions, backend health."""
