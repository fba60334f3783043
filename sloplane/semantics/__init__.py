"""What a declaration means: the queries of each SLI kind, the subjects measured, and what it costs in minutes.

Renderers and the evaluator both read from here, so an alert, a gate and `explain` mean the same thing.
"""
