"""Pure ingestion core: reading images, archives and CSV files safely, detecting and cropping faces.

Nothing here imports Django (a test proves it), so every function runs and benchmarks as plain
Python; `annotate.services.ingest` (planning a batch) and `annotate.services.image_pipeline`
(storing images and faces) are the Django side that stores what these return.
"""
