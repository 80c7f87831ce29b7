"""Pixelwise arithmetic over rasters and numbers: Arithmetic and Local (docs/protocol.md §6.2).

Each band is treated alone: a one-band input (a number, or a one-band raster) stands for every band of the others,
and the output has as many bands as the widest input.  ArcGIS's Local reads the first band of each input only; on a
one-band service this is the same, and on a multiband one every band gets the operation instead of only the first.
Both functions compute in float64 and output float32 (docs/protocol.md §6.4), except the comparisons and boolean
operations (0/1 as uint8) and the bitwise ones (int32, on the inputs truncated to integers).  A pixel is NoData
where any input is, and where the result is undefined or beyond float32 (division by zero, log of a negative,
overflow); the cell statistics "IgnoreNoData" use the inputs valid at each pixel, NoData where none is.  IsNull is
valid everywhere (1 where its input is NoData).  Vectorised numpy: each operation is one pass over the block.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np

from imgsvc.errors import unsupported
from imgsvc.functions import expression
from imgsvc.functions.base import BandsInfo, RasterFunction

INT32 = np.iinfo(np.int32)
MAX_LIST_INPUTS = 64  # rasters and numbers in one list argument: each is a block in memory


def float32_pixels(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``values`` (bands, rows, cols) as float32, NoData where any band is NaN, infinite or beyond float32
    (division by zero, overflow: the cast makes those infinite) or where ``valid`` is False; NoData pixels hold 0."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = values.astype(np.float32)
    valid = valid & np.isfinite(out).all(axis=0)
    out[:, ~valid] = 0
    return out, valid


def _integers(values: np.ndarray) -> np.ndarray:
    """Values truncated to int64 for the bitwise operations; values beyond int64 become 0 (and are NoData by the
    int32 range check of the result)."""
    fits = np.isfinite(values) & (np.abs(values) < 2.0 ** 62)
    return np.where(fits, np.trunc(np.where(fits, values, 0)), 0).astype(np.int64)


def _shift(values: np.ndarray, counts: np.ndarray, left: bool) -> np.ndarray:
    """A bitwise shift, as a product or floored quotient by a power of two so that overflow shows (beyond int32 ->
    NoData) instead of wrapping; a count outside 0..31 gives NaN (NoData) rather than C's undefined behaviour."""
    counts = _integers(counts)
    ok = (counts >= 0) & (counts < 32)
    factor = np.exp2(np.where(ok, counts, 0))
    whole = _integers(values).astype(np.float64)
    return np.where(ok, whole * factor if left else np.floor(whole / factor), np.nan)


def _bitwise(operation: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    return lambda *args: operation(*(_integers(a) for a in args)).astype(np.float64)


def _boolean(operation: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    return lambda *args: operation(*(np.asarray(a) != 0 for a in args)).astype(np.float64)


def _set_null(condition: np.ndarray, value: np.ndarray) -> np.ndarray:
    """SetNull: NoData where the condition is true (non-zero), else the value."""
    return np.where(condition != 0, np.nan, value)


def _frequencies(values: np.ndarray) -> np.ndarray:
    """How often each input's value occurs among the inputs at its pixel (values (n, ...); NaN counts 0)."""
    counts = np.zeros(values.shape, np.int32)
    for other in values:
        counts += values == other
    return counts


def _most_or_least_frequent(values: np.ndarray, most: bool) -> np.ndarray:
    """Majority (most) or minority (least) of the non-NaN inputs at each pixel; ties go to the lowest value."""
    counts = _frequencies(values).astype(np.float64)
    counts[np.isnan(values)] = np.nan
    target = np.nanmax(counts, axis=0) if most else np.nanmin(counts, axis=0)
    return np.nanmin(np.where(counts == target, values, np.nan), axis=0)


def _variety(values: np.ndarray) -> np.ndarray:
    """The number of distinct non-NaN values at each pixel (NaN where there is none)."""
    ordered = np.sort(values, axis=0)  # NaN last
    present = ~np.isnan(ordered)
    new = present.copy()
    new[1:] &= ordered[1:] != ordered[:-1]
    count = new.sum(axis=0).astype(np.float64)
    return np.where(count > 0, count, np.nan)


def _range(values: np.ndarray) -> np.ndarray:
    return np.nanmax(values, axis=0) - np.nanmin(values, axis=0)


# Statistics over the stacked inputs (n, bands, rows, cols) with NoData as NaN: the reductions skip NaN, so the
# plain codes (NoData where any input is) and the IgnoreNoData ones (codes + 28) share them.
STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Majority": lambda v: _most_or_least_frequent(v, most=True), "Max": lambda v: np.nanmax(v, axis=0),
    "Mean": lambda v: np.nanmean(v, axis=0), "Median": lambda v: np.nanmedian(v, axis=0),
    "Min": lambda v: np.nanmin(v, axis=0), "Minority": lambda v: _most_or_least_frequent(v, most=False),
    "Range": _range, "StdDev": lambda v: np.nanstd(v, axis=0), "Sum": lambda v: np.nansum(v, axis=0),
    "Variety": _variety,
}


@dataclass(frozen=True)
class Operation:
    """A Local operation: its name, how many inputs it takes (None = one or more, reduced by ``statistic``), what it
    computes (float64 in, float64 out; NaN/inf = NoData) and its output type."""

    name: str
    arity: int | None
    compute: Callable[..., np.ndarray] | None = None
    statistic: str | None = None
    ignore_no_data: bool = False
    dtype: str = "float32"


def _unary(name, compute, dtype="float32"):
    return Operation(name, 1, compute, dtype=dtype)


def _binary(name, compute, dtype="float32"):
    return Operation(name, 2, compute, dtype=dtype)


_COMPARISON = "uint8"
_BITWISE = "int32"

# The Local operation codes of docs/protocol.md §6.2 (esriGeoAnalysisFunction values).  Divide is a true division;
# FloatDivide (64) is the same and FloorDivide (65) rounds its quotient down.
OPERATIONS: dict[int, Operation] = {
    1: _binary("Plus", np.add), 2: _binary("Minus", np.subtract), 3: _binary("Times", np.multiply),
    4: _unary("SquareRoot", np.sqrt), 5: _binary("Power", np.power), 6: _unary("ACos", np.arccos),
    7: _unary("ASin", np.arcsin), 8: _unary("ATan", np.arctan), 9: _unary("ATanH", np.arctanh),
    10: _unary("Abs", np.abs),
    11: _binary("BitwiseAnd", _bitwise(np.bitwise_and), _BITWISE),
    12: _binary("BitwiseLeftShift", lambda a, b: _shift(a, b, left=True), _BITWISE),
    13: _unary("BitwiseNot", _bitwise(np.invert), _BITWISE),
    14: _binary("BitwiseOr", _bitwise(np.bitwise_or), _BITWISE),
    15: _binary("BitwiseRightShift", lambda a, b: _shift(a, b, left=False), _BITWISE),
    16: _binary("BitwiseXor", _bitwise(np.bitwise_xor), _BITWISE),
    17: _binary("BooleanAnd", _boolean(np.logical_and), _COMPARISON),
    18: _unary("BooleanNot", _boolean(np.logical_not), _COMPARISON),
    19: _binary("BooleanOr", _boolean(np.logical_or), _COMPARISON),
    20: _binary("BooleanXor", _boolean(np.logical_xor), _COMPARISON),
    21: _unary("Cos", np.cos), 22: _unary("CosH", np.cosh), 23: _binary("Divide", np.divide),
    24: _binary("EqualTo", np.equal, _COMPARISON), 25: _unary("Exp", np.exp),
    26: _unary("Exp10", lambda a: np.power(10.0, a)), 27: _unary("Exp2", np.exp2),
    28: _binary("GreaterThan", np.greater, _COMPARISON), 29: _binary("GreaterThanEqual", np.greater_equal, _COMPARISON),
    30: _unary("Int", np.trunc), 31: _unary("IsNull", None, _COMPARISON), 32: _unary("Float", np.asarray),
    33: _binary("LessThan", np.less, _COMPARISON), 34: _binary("LessThanEqual", np.less_equal, _COMPARISON),
    35: _unary("Ln", np.log), 36: _unary("Log10", np.log10), 37: _unary("Log2", np.log2),
    44: _binary("Mod", np.fmod),  # the remainder with the dividend's sign (C's fmod); by zero -> NaN
    45: _unary("Negate", np.negative),
    46: _binary("NotEqual", np.not_equal, _COMPARISON),
    48: _unary("RoundDown", np.floor), 49: _unary("RoundUp", np.ceil), 50: _binary("SetNull", _set_null),
    51: _unary("Sin", np.sin), 52: _unary("SinH", np.sinh), 53: _unary("Square", np.square),
    56: _unary("Tan", np.tan), 57: _unary("TanH", np.tanh), 59: _unary("ACosH", np.arccosh),
    60: _unary("ASinH", np.arcsinh), 61: _binary("ATan2", np.arctan2),
    64: _binary("FloatDivide", np.divide), 65: _binary("FloorDivide", np.floor_divide),
}
_STATISTIC_CODES = {38: "Majority", 39: "Max", 40: "Mean", 41: "Median", 42: "Min", 43: "Minority", 47: "Range",
                    54: "StdDev", 55: "Sum", 58: "Variety"}
for _code, _name in _STATISTIC_CODES.items():
    OPERATIONS[_code] = Operation(_name, None, statistic=_name)
    # The IgnoreNoData variants follow in the same order: 66 MajorityIgnoreNoData ... 75 VarietyIgnoreNoData.
    _ignore_code = 66 + list(_STATISTIC_CODES).index(_code)
    OPERATIONS[_ignore_code] = Operation(f"{_name}IgnoreNoData", None, statistic=_name, ignore_no_data=True)
NOT_BUILT = {76: "Con", 78: "Conditional"}


def check_input_count(function: RasterFunction, argument: str, inputs: Sequence[BandsInfo]) -> None:
    if len(inputs) > MAX_LIST_INPUTS:
        raise function.bad(argument, f"holds {len(inputs)} rasters and numbers; at most {MAX_LIST_INPUTS} are "
                           "accepted")


def check_band_counts(function: RasterFunction, argument: str, inputs: Sequence[BandsInfo]) -> BandsInfo:
    """The widest input, after checking every input has its band count or one band (which stands for all)."""
    check_input_count(function, argument, inputs)
    widest = max(inputs, key=lambda info: info.count)
    for info in inputs:
        if info.count not in (1, widest.count):
            raise function.bad(argument, f"mixes rasters of {info.count} and {widest.count} bands; give rasters "
                               "of the same band count, or of one band")
    return widest


def _operand(raster) -> np.ndarray | np.float64:
    """A raster input as float64: a number (a Constant input, broadcast with zero strides) as a scalar, so that
    numpy broadcasts it instead of converting a whole grid of it; a one-band raster stays one band."""
    if _is_constant(raster):
        return np.float64(raster.data.flat[0])
    return raster.data.astype(np.float64)


# The Local operations the compiled expression kernel runs (by its operator names), when at most one input is a
# raster: one pass per band with no block-sized temporaries (imgsvc.functions.expression).
COMPILED_OPERATIONS = {"Plus": "+", "Minus": "-", "Times": "*", "Divide": "/", "Power": "pow", "SquareRoot": "sqrt",
                       "Abs": "abs", "Exp": "exp", "Ln": "ln", "Log10": "log10", "Sin": "sin", "Cos": "cos",
                       "Tan": "tan", "Negate": "negate"}


def _is_constant(raster) -> bool:
    return not any(raster.data.strides)


def _compiled(operation: Operation, inputs, bands: int) -> tuple[np.ndarray, np.ndarray]:
    """``operation`` on one raster and numbers through the compiled kernel, band by band."""
    (raster,) = [r for r in inputs if not _is_constant(r)]
    out = np.empty((bands, *raster.valid.shape), np.float32)
    valid = raster.valid.copy()
    opcode = expression.OPCODES[COMPILED_OPERATIONS[operation.name]]
    for band in range(bands):
        ops, args = [], []
        for r in inputs:
            if _is_constant(r):
                ops.append(expression.OPCODES["constant"])
                args.append(float(r.data.flat[0]))
            else:
                ops.append(expression.OPCODES["band"])
                args.append(band if r.data.shape[0] > 1 else 0)
        program = expression.Program(np.asarray(ops + [opcode], np.int32), np.asarray(args + [0.0], np.float64))
        out[band:band + 1], band_valid = expression.evaluate(program, raster.data, raster.valid)
        valid &= band_valid
    out[:, ~valid] = 0
    return out, valid


def apply_operation(operation: Operation, inputs) -> tuple[np.ndarray, np.ndarray]:
    """``operation`` on the raster inputs (in order), band by band with one-band inputs broadcast."""
    bands = max(r.data.shape[0] for r in inputs)
    if operation.name in COMPILED_OPERATIONS and sum(not _is_constant(r) for r in inputs) == 1:
        return _compiled(operation, inputs, bands)
    shape = (bands, *inputs[0].valid.shape)
    valid_each = np.stack([r.valid for r in inputs])
    if operation.name == "IsNull":
        return np.broadcast_to(~valid_each[0], shape).astype(np.uint8), np.ones(shape[1:], bool)
    values = [_operand(r) for r in inputs]
    with np.errstate(all="ignore"):
        if operation.statistic is not None:
            stacked = np.stack([np.broadcast_to(v, shape) for v in values])
            stacked[np.broadcast_to(~valid_each[:, None], stacked.shape)] = np.nan
            stacked[:, :, ~valid_each.any(axis=0)] = 0  # NoData anyway: spares numpy's all-NaN warnings
            result = STATISTICS[operation.statistic](stacked)
            valid = valid_each.any(axis=0) if operation.ignore_no_data else valid_each.all(axis=0)
        else:
            result = np.broadcast_to(np.asarray(operation.compute(*values), dtype=np.float64), shape)
            valid = valid_each.all(axis=0)
    if operation.dtype == "float32":
        return float32_pixels(result, valid)
    low, high = (0, 1) if operation.dtype == _COMPARISON else (INT32.min, INT32.max)
    valid = valid & (np.isfinite(result) & (result >= low) & (result <= high)).all(axis=0)
    return np.where(valid, result, 0).astype(operation.dtype), valid


def _operation(function: RasterFunction, code: int) -> Operation:
    if code in NOT_BUILT:
        raise unsupported(f"renderingRule {function.NAME} Operation {code} ({NOT_BUILT[code]}) is not supported "
                          "yet.", parameter="renderingRule")
    if code not in OPERATIONS:
        raise function.bad("Operation", f"must be one of the operation codes of docs/protocol.md §6.2, got {code}")
    return OPERATIONS[code]


class _Pixelwise(RasterFunction):
    """What Arithmetic and Local share: ExtentType and CellsizeType are accepted and checked, and change nothing
    (every input is rendered on the one read grid)."""

    EXTENT_AND_CELLSIZE = {"ExtentType": ("ExtentType",), "CellsizeType": ("CellsizeType", "CellSizeType")}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.integer("ExtentType", 0, 0, 3)
        self.integer("CellsizeType", 0, 0, 4)

    def describe(self, inputs):
        widest = check_band_counts(self, next(iter(self.RASTER_INPUTS)), inputs)
        return BandsInfo(widest.names, self.operation.dtype, None)

    def apply(self, inputs, grid):
        return apply_operation(self.operation, inputs)


class Arithmetic(_Pixelwise):
    """Arithmetic: ``Raster`` (op) ``Raster2``, either a raster or a number (1 +, 2 −, 3 ×, 4 ÷, 5 power, 6 mode:
    the remainder, as Local's Mod)."""

    NAME = "Arithmetic"
    ARGUMENTS = {"Operation": ("Operation",), **_Pixelwise.EXTENT_AND_CELLSIZE}
    RASTER_INPUTS = {"Raster": ("Raster",), "Raster2": ("Raster2",)}
    LOCAL_CODE = {1: 1, 2: 2, 3: 3, 4: 23, 5: 5, 6: 44}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.operation = OPERATIONS[self.LOCAL_CODE[self.integer("Operation", 1, 1, 6)]]


class Local(_Pixelwise):
    """Local: one operation over ``Rasters`` (rasters and numbers), codes as in docs/protocol.md §6.2."""

    NAME = "Local"
    ARGUMENTS = {"Operation": ("Operation",), **_Pixelwise.EXTENT_AND_CELLSIZE}
    RASTER_INPUTS = {"Rasters": ("Rasters",)}
    RASTER_LISTS = frozenset({"Rasters"})

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        if not self.has("Operation"):
            raise self.bad("Operation", "is required")
        self.operation = _operation(self, self.integer("Operation"))

    def describe(self, inputs):
        arity = self.operation.arity
        if arity is not None and len(inputs) != arity:
            raise self.bad("Rasters", f"must hold {arity} raster(s) or number(s) for {self.operation.name}, got "
                           f"{len(inputs)}")
        return super().describe(inputs)
