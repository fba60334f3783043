"""The bottom layer: durations, instants, budget math, series and object names, serialisation, file writing.

Nothing here knows a declaration; everything above may use it.
"""
