"""Band-math expressions of BandArithmetic Method 0 (docs/protocol.md §6.2), e.g. ``"(B4-B3)/(B4+B3)"``.

A client string is parsed by a small recursive-descent grammar into a tree, never handed to ``eval`` (the attack
surface of raster servers is paths and expressions).  The work is bounded before it starts: the text's length, the
nesting depth and the number of operations are capped, so a hostile expression is refused with the token at fault
instead of hanging or exhausting the stack.

Grammar (case-insensitive names, whitespace ignored)::

    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/") unary)*
    unary    := ("-" | "+") unary | primary
    primary  := NUMBER | BAND | FUNCTION "(" sum ("," sum)* ")" | "(" sum ")"
    NUMBER   := digits with an optional fraction and exponent: 2, 0.5, .5, 1e-3
    BAND     := "B" followed by a 1-based band number: B1, B4

FUNCTION is one of ``FUNCTIONS``: abs, sqrt, exp, ln, log10, sin, cos, tan (one argument), pow (two), min and max
(two or more).  Nothing else is a name: ``__import__``, attribute access (``B1.real``) and ``**`` are refused.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from imgsvc._kernels import expression as _expression

MAX_LENGTH = 4096  # characters: a real band-math formula is a line or two
MAX_DEPTH = 32  # nested parentheses, unary signs and function calls
MAX_OPERATIONS = 256  # operators and function calls: each one is a pass over the whole block


# The compiled kernel's opcodes (ext/expression.pyx): a band, a constant, then each operator and function.
OPCODES = {"band": 0, "constant": 1, "negate": 2, "+": 3, "-": 4, "*": 5, "/": 6, "abs": 7, "sqrt": 8, "exp": 9,
           "ln": 10, "log10": 11, "sin": 12, "cos": 13, "tan": 14, "pow": 15, "min": 16, "max": 17}


@dataclass(frozen=True)
class FunctionSpec:
    min_args: int
    max_args: int | None  # None = any number from min_args


FUNCTIONS: dict[str, FunctionSpec] = {
    **{name: FunctionSpec(1, 1) for name in ("abs", "sqrt", "exp", "ln", "log10", "sin", "cos", "tan")},
    "pow": FunctionSpec(2, 2), "min": FunctionSpec(2, None), "max": FunctionSpec(2, None),
}

_TOKEN = re.compile(r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<symbol>[-+*/(),]))")
_BAND = re.compile(r"[bB]([1-9]\d{0,3})")


class ExpressionError(ValueError):
    """Why an expression is refused, naming the token at fault and where it stands (1-based character)."""


@dataclass(frozen=True)
class Token:
    kind: str  # "number", "name", "symbol", "invalid" (a character no token starts with) or "end"
    text: str
    position: int  # 1-based character


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Band:
    number: int  # 1-based, as written


@dataclass(frozen=True)
class Negate:
    operand: Node


@dataclass(frozen=True)
class Binary:
    operator: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    function: str
    arguments: tuple[Node, ...]


Node = Union[Number, Band, Negate, Binary, Call]


def tokens(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"is {len(text)} characters long; at most {MAX_LENGTH} are accepted")
    out: list[Token] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            out.append(Token("end", "end of expression", position + 1))
            return out
        match = _TOKEN.match(text, position)
        if match is None:  # refused when the parser reaches it, so errors come in reading order
            out.append(Token("invalid", text[position], position + 1))
            position += 1
            continue
        kind = match.lastgroup
        out.append(Token(kind, match.group(kind), match.start(kind) + 1))
        position = match.end()


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokens(text)
        self.index = 0
        self.operations = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def unexpected(self) -> ExpressionError:
        token = self.current
        if token.kind == "end":
            return ExpressionError("ends before it is complete")
        return ExpressionError(f"has an unexpected {token.text!r} at character {token.position}")

    def take(self, symbol: str) -> None:
        if self.current.text != symbol:
            raise self.unexpected()
        self.index += 1

    def count(self, token: Token) -> None:
        self.operations += 1
        if self.operations > MAX_OPERATIONS:
            raise ExpressionError(f"has more than {MAX_OPERATIONS} operations ({token.text!r} at character "
                                  f"{token.position})")

    def parse(self) -> Node:
        tree = self.sum(0)
        if self.current.kind != "end":
            raise self.unexpected()
        return tree

    def nested(self, depth: int, token: Token) -> int:
        if depth >= MAX_DEPTH:
            raise ExpressionError(f"nests deeper than {MAX_DEPTH} levels ({token.text!r} at character "
                                  f"{token.position})")
        return depth + 1

    def sum(self, depth: int) -> Node:
        return self.left_associative(("+", "-"), self.product, depth)

    def product(self, depth: int) -> Node:
        return self.left_associative(("*", "/"), self.unary, depth)

    def left_associative(self, operators: tuple[str, ...], operand: Callable[[int], Node], depth: int) -> Node:
        """operand (operator operand)*, grouped from the left: B1 - B2 - B3 is (B1 - B2) - B3."""
        node = operand(depth)
        while self.current.text in operators:
            operator = self.current
            self.count(operator)
            self.index += 1
            node = Binary(operator.text, node, operand(depth))
        return node

    def unary(self, depth: int) -> Node:
        token = self.current
        if token.text in ("-", "+"):
            self.index += 1
            operand = self.unary(self.nested(depth, token))
            if token.text == "+":
                return operand
            self.count(token)
            return Negate(operand)
        return self.primary(depth)

    def primary(self, depth: int) -> Node:
        token = self.current
        if token.kind == "number":
            self.index += 1
            value = float(token.text)
            if not math.isfinite(value):
                raise ExpressionError(f"has a number {token.text!r} out of range at character {token.position}")
            return Number(value)
        if token.text == "(":
            self.index += 1
            node = self.sum(self.nested(depth, token))
            self.take(")")
            return node
        if token.kind == "name":
            self.index += 1
            band = _BAND.fullmatch(token.text)
            if band:
                return Band(int(band.group(1)))
            name = token.text.lower()
            if name not in FUNCTIONS:
                raise ExpressionError(f"has an unknown name {token.text!r} at character {token.position} (bands "
                                      f"are B1, B2, ...; functions are {', '.join(FUNCTIONS)})")
            return self.call(token, name, self.nested(depth, token))
        raise self.unexpected()

    def call(self, token: Token, name: str, depth: int) -> Node:
        self.count(token)
        self.take("(")
        arguments = [self.sum(depth)]
        while self.current.text == ",":
            self.index += 1
            arguments.append(self.sum(depth))
        self.take(")")
        spec = FUNCTIONS[name]
        if len(arguments) < spec.min_args or (spec.max_args is not None and len(arguments) > spec.max_args):
            wanted = (f"{spec.min_args}" if spec.max_args == spec.min_args else f"at least {spec.min_args}")
            raise ExpressionError(f"calls {token.text!r} (character {token.position}) with {len(arguments)} "
                                  f"argument(s); it takes {wanted}")
        return Call(name, tuple(arguments))


def parse(text: str) -> Node:
    """The tree of a band-math expression; ExpressionError says why one is refused."""
    return _Parser(text).parse()


def bands_used(node: Node) -> set[int]:
    """The 1-based band numbers an expression reads."""
    if isinstance(node, Band):
        return {node.number}
    if isinstance(node, Negate):
        return bands_used(node.operand)
    if isinstance(node, Binary):
        return bands_used(node.left) | bands_used(node.right)
    if isinstance(node, Call):
        return set().union(*(bands_used(a) for a in node.arguments))
    return set()


@dataclass(frozen=True)
class Program:
    """An expression in postfix form for the compiled kernel: opcodes and their arguments (a 0-based band index
    for a band, the value for a constant)."""

    ops: np.ndarray  # int32
    args: np.ndarray  # float64


def compile_program(node: Node) -> Program:
    """The postfix program of a parsed expression; min and max of several arguments fold pairwise."""
    ops: list[int] = []
    args: list[float] = []
    depth = 0
    deepest = 0

    def emit(op: str, arg: float = 0.0, change: int = 0) -> None:
        nonlocal depth, deepest
        ops.append(OPCODES[op])
        args.append(arg)
        depth += change
        deepest = max(deepest, depth)

    def visit(n: Node) -> None:
        if isinstance(n, Number):
            emit("constant", n.value, +1)
        elif isinstance(n, Band):
            emit("band", n.number - 1, +1)
        elif isinstance(n, Negate):
            visit(n.operand)
            emit("negate")
        elif isinstance(n, Binary):
            visit(n.left)
            visit(n.right)
            emit(n.operator, change=-1)
        else:
            visit(n.arguments[0])
            if len(n.arguments) == 1:
                emit(n.function)
            for argument in n.arguments[1:]:
                visit(argument)
                emit(n.function, change=-1)

    visit(node)
    if deepest > _expression.MAX_STACK_DEPTH:
        raise ExpressionError(f"needs {deepest} values at once; at most {_expression.MAX_STACK_DEPTH} are accepted")
    return Program(np.asarray(ops, np.int32), np.asarray(args, np.float64))


# The pixel types the kernel reads directly (others are converted to float64 first).
KERNEL_DTYPES = {np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8")}


def evaluate(program: Program, data: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The expression over (bands, rows, cols) ``data`` as (1, rows, cols) float32 and its validity: NoData where
    ``valid`` is False or the value is undefined (division by zero, a log of a negative) or beyond float32.  The
    program's band indexes must be within ``data``'s bands (the caller checked them against the service)."""
    if int(program.args[program.ops == OPCODES["band"]].max(initial=0)) >= data.shape[0]:
        raise ValueError("the program reads a band the data does not have")
    if data.dtype not in KERNEL_DTYPES:
        data = data.astype(np.float64)
    data = np.ascontiguousarray(data)
    out = np.empty((1, *valid.shape), np.float32)
    out_valid = np.empty(valid.shape, np.uint8)
    _expression.evaluate(program.ops, program.args, data, np.ascontiguousarray(valid).view(np.uint8), out[0],
                         out_valid)
    return out, out_valid.view(bool)
