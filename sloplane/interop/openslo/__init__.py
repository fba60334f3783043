"""OpenSLO interchange: `importer` reads v1 and v2alpha documents, `exporter` writes v1."""
