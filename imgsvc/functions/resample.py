"""Resample (docs/protocol.md §6.2): which resampling renders the service image.

The render stage already resamples the service's items onto the (read) grid, so a Resample directly over the
service image chooses the resampling it uses, before the request's ``interpolation`` and the service's default
(``Chain.resampling``, read by the plan); its pixels are its input's.  A Resample over another function's output
would resample pixels already on the output grid: refused as not supported yet (``imgsvc.functions``).

``ResamplingType`` left out makes no choice.  ``InputCellsize`` and ``OutputCellsize`` are accepted when left out or
0 (``{"x": 0, "y": 0}``): the cell sizes are the export's own (bbox and size), so other values are refused.
"""
from __future__ import annotations

from collections.abc import Mapping

from imgsvc.errors import unsupported
from imgsvc.functions.base import RasterFunction

# ResamplingType codes this pipeline renders with, as the kernels name them.
RESAMPLING_OF_TYPE = {0: "nearest", 1: "bilinear", 2: "cubic", 3: "mode"}
# The others, named in the refusal (7 and 10 are the vector-field types ArcGIS JS sends).
UNSUPPORTED_TYPES = {4: "BilinearPlus", 5: "Gauss", 6: "GaussPlus", 7: "Average (vector UV)", 8: "Minimum",
                     9: "Maximum", 10: "VectorAverage (magnitude-direction)"}


class Resample(RasterFunction):
    NAME = "Resample"
    ARGUMENTS = {"ResamplingType": ("ResamplingType",), "InputCellsize": ("InputCellsize", "InputCellSize"),
                 "OutputCellsize": ("OutputCellsize", "OutputCellSize")}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.resampling: str | None = None
        if self.has("ResamplingType"):
            code = self.integer("ResamplingType", None, 0, max(UNSUPPORTED_TYPES))
            if code in UNSUPPORTED_TYPES:
                raise unsupported(f"renderingRule Resample ResamplingType {code} ({UNSUPPORTED_TYPES[code]}) is not "
                                  "supported; use 0 nearest, 1 bilinear, 2 cubic or 3 majority.",
                                  parameter="renderingRule")
            self.resampling = RESAMPLING_OF_TYPE[code]
        for name in ("InputCellsize", "OutputCellsize"):
            self._no_cell_size(name)

    def _no_cell_size(self, name: str) -> None:
        value = self.arguments.get(name)
        if value is None:
            return
        if not isinstance(value, Mapping) or set(k.lower() for k in value) - {"x", "y"}:
            raise self.bad(name, f'must be a cell size {{"x": …, "y": …}}, got {value!r}')
        sizes = [self._number(v, name, 0, None) for v in value.values()]
        if any(sizes):
            raise unsupported(f"renderingRule Resample {name} {value!r} is not supported: the cell size is the "
                              "export's (bbox and size).", parameter="renderingRule")

    def describe(self, inputs):
        return inputs[0]

    def apply(self, inputs, grid):
        return inputs[0].data, inputs[0].valid
