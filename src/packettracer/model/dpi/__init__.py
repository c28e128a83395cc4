"""Deep packet inspection: protocol detectors, application rules, OS fingerprints, anomaly
scores. Pure logic over packet bytes; no I/O beyond reading the package's data tables."""
