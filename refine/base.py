"""The `Refiner` interface: a rendered view with holes and blur in, a complete Frame out."""

from __future__ import annotations

from typing import Protocol

from worldgen.frame import Frame, RenderedView


class Refiner(Protocol):
    name: str

    def __call__(self, view: RenderedView) -> Frame:
        """Fill holes, sharpen, fix depth. Returns a Frame of view.camera's size with rgb [H, W, 3] in
        [0, 1], depth [H, W] (+inf where sky) and sky [H, W] bool."""
        ...
