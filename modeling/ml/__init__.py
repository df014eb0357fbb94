"""Pure torch: backbones and weights, the head, transforms, the feature cache, training, prediction.

Nothing here imports Django (tests/test_pure_cores.py proves it), so this package is tested
and benchmarked as plain Python. Callers pass paths, labels and a frozen TrainConfig in.
"""
