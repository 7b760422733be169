"""worldgen: one landscape photo -> an endless 3D flythrough that keeps the world it invents.

Layers, imported downwards only (docs/architecture.md; tests/test_layers.py checks it):
core (worldgen/core) <- renderers, refine <- pipeline (worldgen/pipeline) <- configs
<- commands (worldgen/commands, worldgen/cli.py) <- viewer.
"""
