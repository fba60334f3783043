"""Events kept past Prometheus: hourly rollups of the fleet (`rollup`), cut in each SLO's time zone (`hours`)."""
