"""Flight presets: `PipelineConfig`s for every command that flies (`worldgen fly|compare|live --preset NAME`)."""

from __future__ import annotations

from configs.base import Preset
from worldgen.pipeline.config import PipelineConfig
from worldgen.pipeline.generator import GeneratorConfig

FLIGHT_PRESETS: dict[str, Preset] = {
    "default": Preset(
        "the defaults: working size from the photo's aspect with the longer side 256, CUDA when available",
        PipelineConfig(),
    ),
    "cpu-fast": Preset(
        "a quick look on a CPU: longer side 128 (about 4x fewer pixels than the default), pure-PyTorch renderer",
        PipelineConfig(auto_side=128, device="cpu"),
    ),
    "gpu-quality": Preset(
        "a CUDA GPU: longer side 512, gsplat, and one colour-fitting pass for every later lift too",
        PipelineConfig(auto_side=512, device="cuda", generator=GeneratorConfig(fit_iters=1)),
    ),
}
