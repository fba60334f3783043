"""sloplane: one SLO declaration in, the whole release-governance loop out."""

__version__ = "0.1.0"
