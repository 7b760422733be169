"""The core everything stands on: cameras and their one convention, frames, the Gaussian scene and its
PLY, the Renderer / Refiner / DepthEstimator interfaces, files and images, metrics, config trees.
Imports nothing of the project outside worldgen.core."""
