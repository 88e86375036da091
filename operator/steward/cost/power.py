"""GPU power draw as a function of utilisation, grounded in measurements.

The H100 curve is measured (nvidia-smi every 100 ms on an H100 80GB HBM3 with a 700 W limit;
``shared/data/power/h100_phases.csv``): idle 74 W, idle with a CUDA context held 125 W, a 50 %
duty-cycle bf16 matmul 457 W, flat-out bf16 matmul 689 W, a 16 GB checkpoint save 140 W. Between
measured points power is linear in utilisation. Other models scale the H100 curve by their
board power limit (TDP), an assumption stated here and in the docs, until measured.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class PowerCurve:
    """Watts drawn by one GPU.

    Attributes:
        model: GPU model name as DCGM reports it (``modelName``).
        idle_watts: No process on the GPU.
        checkpoint_watts: Copying a checkpoint between GPU and host memory.
        busy_points: ``(utilisation %, watts)`` pairs, ascending, from 0 % (a context held,
            nothing running) to 100 %.
        memory_mib: Frame buffer size.
        source: Where the numbers come from.
    """

    model: str
    idle_watts: float
    checkpoint_watts: float
    busy_points: tuple[tuple[float, float], ...]
    memory_mib: int
    source: str

    def watts(self, utilization_percent: float | None) -> float:
        """Power at a utilisation; ``None`` means no process holds the GPU (idle)."""
        if utilization_percent is None:
            return self.idle_watts
        u = min(max(utilization_percent, 0.0), 100.0)
        xs = [x for x, _ in self.busy_points]
        i = min(max(bisect_right(xs, u) - 1, 0), len(xs) - 2)
        (x0, y0), (x1, y1) = self.busy_points[i], self.busy_points[i + 1]
        return y0 + (y1 - y0) * (u - x0) / (x1 - x0)

    def scaled(self, model: str, factor: float, memory_mib: int) -> PowerCurve:
        """This curve with every wattage multiplied by ``factor``."""
        return PowerCurve(
            model=model,
            idle_watts=self.idle_watts * factor,
            checkpoint_watts=self.checkpoint_watts * factor,
            busy_points=tuple((u, w * factor) for u, w in self.busy_points),
            memory_mib=memory_mib,
            source=f"{self.model} curve scaled by board power ({factor:.3f}); not measured",
        )


H100: Final = PowerCurve(
    model="NVIDIA H100 80GB HBM3",
    idle_watts=74.0,
    checkpoint_watts=140.0,
    busy_points=((0.0, 125.0), (50.0, 457.0), (100.0, 689.0)),
    memory_mib=81559,
    source="measured: shared/data/power/h100_phases.csv (nvidia-smi, 100 ms)",
)

#: Board power limits (W) and memory (MiB) used to scale the H100 curve.
_BOARDS: Final = {
    "NVIDIA A100-SXM4-80GB": (400.0, 81920),
    "NVIDIA A100-SXM4-40GB": (400.0, 40960),
    "NVIDIA L4": (72.0, 23034),
    "NVIDIA A10G": (300.0, 23028),
    "Tesla V100-SXM2-16GB": (300.0, 16384),
}

CURVES: Final[dict[str, PowerCurve]] = {
    H100.model: H100,
    **{name: H100.scaled(name, watts / 700.0, mib) for name, (watts, mib) in _BOARDS.items()},
}


def curve_for(model: str) -> PowerCurve:
    """The curve of a GPU model, matched on DCGM's model name or a label-safe form of it
    (``NVIDIA-A100-SXM4-40GB``); unknown models get the H100 curve."""
    for name, curve in CURVES.items():
        if model in (name, name.replace(" ", "-")):
            return curve
    return H100
