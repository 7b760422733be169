"""The pipeline: frame 0 from a photo (sources, depth), lifting, sky, the generators, camera paths, the
one flight loop (flight.py), the refiner choice (refiners.py), the algorithm's config tree (config.py),
and what comparisons measure (recording.py, scoring.py). Imports the core and the backends."""
