"""Pure ingestion core: reading images, archives and CSV files safely, detecting and cropping faces.

Nothing here imports Django (a test proves it), so every function runs and benchmarks as plain
Python; `annotate.services.ingest` is the Django side that stores what these return.
"""
