"""Declarations from files, in every format sloplane speaks: its own and OpenSLO (import and export).

The loader tells formats apart by their own markers and hands each document to its reader; the
importers of other tools' formats live here too.
"""

from sloplane.interop.loader import LoadResult, load_declarations, load_paths

__all__ = ["LoadResult", "load_declarations", "load_paths"]
