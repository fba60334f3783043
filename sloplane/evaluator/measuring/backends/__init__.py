"""Metrics backends the evaluator reads SLIs from, behind one interface."""
