"""Governance: the loop that keeps SLOs honest over years (issue 18) — stale and outdated objectives, delivery
figures from the decision log with advice, and the rest of `sloplane govern`. Each finding names the rule that
produced it and its inputs: nothing is hidden behind a score.

Above `history` (it reads rollups and periods the reports compute) and below `http` (which will serve it).
"""
