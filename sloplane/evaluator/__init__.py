"""The runtime evaluator: reads SLIs from a backend, computes budgets and burn rates, decides gates."""
