"""The `where` clause of a mosaic rule or a catalog /query, compiled into a SQL fragment with bound parameters, for
the catalog's database (SQLite or PostgreSQL: imgsvc/catalog/backend.py).

docs/protocol.md §5 (mosaic rules) and §4 (/query) take a SQL condition over the items' attributes, e.g.
``AcquisitionDate > date '2020-01-01'``.  This module is the only defence between that client text and SQL: the
text is tokenised and parsed here, and the SQL it yields is built only from this module's own fixed vocabulary,
the column expressions the caller gives for known fields, and ``?`` placeholders for every literal.  No client
character ever reaches the SQL, and nothing is evaluated.

Grammar (keywords case-insensitive; NOT binds tighter than AND, AND tighter than OR)::

    clause      := disjunction | (nothing: every item)
    disjunction := conjunction (OR conjunction)*
    conjunction := negation (AND negation)*
    negation    := NOT negation | predicate
    predicate   := "(" disjunction ")"
                 | operand ("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=") operand
                 | field [NOT] IN "(" literal ("," literal)* ")"
                 | field [NOT] BETWEEN operand AND operand
                 | field [NOT] LIKE string [ESCAPE string]
                 | field IS [NOT] NULL
    operand     := field | literal
    field       := name | "quoted name"              (matched case-insensitively; "" is a quote inside)
    literal     := [+|-] number | string | DATE string | TIMESTAMP string
    number      := 12 | 1.5 | .5 | 1e-3               string := 'text' ('' is a quote inside)

Types: a literal takes the type of what it is compared with.  A number compares with INTEGER and DOUBLE fields; a
string with TEXT fields, with numeric fields when it holds a number, and with DATE fields when it holds an ISO date
or timestamp; ``date '…'`` and ``timestamp '…'`` (``YYYY-MM-DD``, optionally ``[ T]HH:MM[:SS[.fff]]`` and ``Z`` or
``±HH:MM``; without an offset the time is UTC) compare with DATE fields, which hold epoch milliseconds UTC.  Two
literals may be compared (clients send the tautologies ``1=1`` and ``''=''``).  Anything else is a 400 naming both
sides.  A number does not compare with a DATE field: epoch milliseconds in a clause would be read by nobody.

NULL: SQL's three-valued logic, as ArcGIS has it; a comparison with a missing or null attribute is not true, and
neither is its NOT.  NULL is a value only in ``IS [NOT] NULL``.

LIKE is case-insensitive for ASCII letters (SQLite's default, PostgreSQL's ILIKE over the "C" collation; ArcGIS
file geodatabases are case-sensitive and enterprise geodatabases vary, so no behaviour matches every server, and
the case-insensitive one finds what a client means more often).  Without ESCAPE no character escapes.

Bounds, each a 400: text longer than 8 KiB (UTF-8), parentheses and NOTs nested deeper than 32, more than 1000
values in one IN list, integers outside 64 bits, numbers that overflow a double.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import NamedTuple, Protocol, Sequence

from imgsvc.catalog.records import Field, FieldType
from imgsvc.errors import ImgsvcError, invalid

MAX_TEXT_BYTES = 8 * 1024
MAX_DEPTH = 32
MAX_IN_VALUES = 1000


class Dialect(Protocol):
    """What the compiled SQL takes from the database it runs in (imgsvc.catalog.backend.Backend is one)."""

    like: str  # the LIKE operator that folds the case of ASCII letters
    like_without_escape: str  # what follows a pattern written without ESCAPE, so that no character escapes

    def field_column(self, field: Field) -> str:
        """A trusted SQL expression of the field's value, built from the caller's own validated field names."""


def compile_where(text: str, fields: Sequence[Field], dialect: Dialect,
                  parameter: str = "where") -> tuple[str, list]:
    """(sql, params): `sql` is a boolean SQL expression to put after WHERE (or "1 = 1" for an empty clause), each
    field reference replaced by `dialect.field_column(field)` (a trusted SQL expression, e.g.
    "json_extract(attributes, '$.\"Year\"')", never client text), every literal a `?` bound in `params`.

    Every refusal is an ImgsvcError of kind INVALID_ARGUMENT for `parameter`, its detail starting with "where" and
    naming the offending token and its position (1-based characters)."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate, which JSON's \ud800 escape lets a client send
        raise invalid(f"where: the character at position {exc.start + 1} is not valid Unicode.",
                      parameter=parameter) from None
    if "\x00" in text:  # PostgreSQL's strings cannot hold it
        raise invalid(f"where: the NUL character at position {text.index(chr(0)) + 1} is not allowed.",
                      parameter=parameter)
    if size > MAX_TEXT_BYTES:
        raise invalid(f"where: the clause is {size} bytes long; at most {MAX_TEXT_BYTES} are accepted.",
                      parameter=parameter)
    tokens = _tokens(text, parameter)
    if tokens[0].kind == "end":
        return "1 = 1", []
    return _Parser(tokens, fields, dialect, parameter).clause()


class _Token(NamedTuple):
    kind: str  # one of the group names of _TOKEN, or "end"
    text: str
    position: int  # 0-based index of its first character in the clause

    def is_keyword(self, word: str) -> bool:
        """Whether this is the bare keyword `word`, in any case of ASCII letters ('ın'.upper() is 'IN')."""
        return self.kind == "word" and self.text.isascii() and self.text.upper() == word

    def shown(self) -> str:
        if self.kind == "end":
            return "the end of the clause"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        # A string or quoted name carries its own quotes; anything else, or text that would not print, is quoted.
        return text if self.kind in ("string", "quoted") and text.isprintable() else repr(text)


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<word>[^\W\d]\w*)
  | (?P<operator><>|!=|<=|>=|=|<|>)
  | (?P<punctuation>[(),])
  | (?P<sign>[-+])
""", re.VERBOSE)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_ISO_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})"
                       r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?", re.ASCII)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

# Words that are never field names when written bare; a field so named is written quoted ("In").  DATE and
# TIMESTAMP are not among them: `Date` is a common field name, and a field is never followed by a string.
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "ESCAPE", "IS", "NULL"})
# The client's operator spelling -> the SQL written: client text never reaches the SQL, even an operator.
_COMPARISONS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_NUMERIC = frozenset({FieldType.OID, FieldType.INTEGER, FieldType.DOUBLE})


def _tokens(text: str, parameter: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            what = {"'": "an unterminated string", '"': "an unterminated quoted field name"}.get(
                text[position], f"an unexpected character {text[position]!r}")
            raise invalid(f"where: {what} at position {position + 1}.", parameter=parameter)
        if match.lastgroup != "space":
            tokens.append(_Token(match.lastgroup, match.group(), position))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


@dataclass(frozen=True)
class _FieldReference:
    field: Field
    token: _Token

    @property
    def type(self) -> FieldType:
        return self.field.type

    def described(self) -> str:
        return f"the {self.field.type.name} field {self.field.name!r}"


@dataclass(frozen=True)
class _Literal:
    type: FieldType | None  # None for a string, which takes the type of what it is compared with
    value: int | float | str
    token: _Token

    def described(self) -> str:
        kind = {None: "string", FieldType.TEXT: "string", FieldType.DATE: "date"}.get(self.type, "number")
        return f"the {kind} {self.token.shown()}"


_Operand = _FieldReference | _Literal
_Fragment = tuple[str, list]  # SQL and the parameters of its placeholders, in order


class _Parser:
    """Recursive descent over the tokens, one method per rule of the grammar in the module docstring, each
    returning the SQL fragment of what it read, parenthesised so that it composes with any operator around it."""

    def __init__(self, tokens: list[_Token], fields: Sequence[Field], dialect: Dialect, parameter: str) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.fields = fields
        self.dialect = dialect
        self.column = dialect.field_column
        self.parameter = parameter

    def clause(self) -> _Fragment:
        fragment = self.disjunction()
        if self.peek().kind != "end":
            raise self.error(self.peek(), f"expected AND, OR or the end of the clause, not {self.peek().shown()}")
        return fragment

    def disjunction(self) -> _Fragment:
        terms = [self.conjunction()]
        while self.keyword("OR"):
            terms.append(self.conjunction())
        return _balanced("OR", terms)

    def conjunction(self) -> _Fragment:
        terms = [self.negation()]
        while self.keyword("AND"):
            terms.append(self.negation())
        return _balanced("AND", terms)

    def negation(self) -> _Fragment:
        token = self.peek()
        if not self.keyword("NOT"):
            return self.predicate()
        self.descend(token)
        sql, params = self.negation()
        self.depth -= 1
        return f"(NOT {sql})", params

    def predicate(self) -> _Fragment:
        opening = self.peek()
        if self.punctuation("("):
            self.descend(opening)
            fragment = self.disjunction()
            self.expect_punctuation(")")
            self.depth -= 1
            return fragment
        left = self.operand()
        token = self.peek()
        if token.kind == "operator":
            self.index += 1
            return self.comparison(left, _COMPARISONS[token.text], self.operand())
        if self.keyword("IS"):
            field = self.field_on_left(left, token).field
            negated = self.keyword("NOT")
            if not self.keyword("NULL"):
                raise self.error(self.peek(), f"expected NULL after IS, not {self.peek().shown()}")
            return f"({self.column(field)} IS {'NOT NULL' if negated else 'NULL'})", []
        negated = self.keyword("NOT")
        token = self.peek()
        if self.keyword("IN"):
            return self.membership(self.field_on_left(left, token), negated)
        if self.keyword("BETWEEN"):
            return self.range(self.field_on_left(left, token), negated)
        if self.keyword("LIKE"):
            return self.pattern(self.field_on_left(left, token), negated)
        expected = "IN, BETWEEN or LIKE" if negated else "a comparison operator, IN, BETWEEN, LIKE or IS"
        raise self.error(self.peek(), f"expected {expected} after {left.token.shown()}, not {self.peek().shown()}")

    def comparison(self, left: _Operand, operator: str, right: _Operand) -> _Fragment:
        left, right = self.comparable(left, right)
        left_sql, left_params = self.sql(left)
        right_sql, right_params = self.sql(right)
        return f"({left_sql} {operator} {right_sql})", left_params + right_params

    def membership(self, left: _FieldReference, negated: bool) -> _Fragment:
        self.expect_punctuation("(")
        values = []
        while True:
            item = self.operand()
            if isinstance(item, _FieldReference):
                raise self.error(item.token, f"an IN list holds values, not fields such as {item.token.shown()}")
            if len(values) == MAX_IN_VALUES:
                raise self.error(item.token, f"an IN list holds at most {MAX_IN_VALUES} values; {item.token.shown()} is one more")
            values.append(self.comparable(left, item)[1].value)
            if not self.punctuation(","):
                break
        self.expect_punctuation(")")
        placeholders = ", ".join("?" * len(values))
        return f"({self.column(left.field)} {'NOT IN' if negated else 'IN'} ({placeholders}))", values

    def range(self, left: _FieldReference, negated: bool) -> _Fragment:
        low = self.comparable(left, self.operand())[1]
        if not self.keyword("AND"):
            raise self.error(self.peek(), f"expected AND between the bounds of BETWEEN, not {self.peek().shown()}")
        high = self.comparable(left, self.operand())[1]
        (low_sql, low_params), (high_sql, high_params) = self.sql(low), self.sql(high)
        return (f"({self.column(left.field)} {'NOT BETWEEN' if negated else 'BETWEEN'} {low_sql} AND {high_sql})",
                low_params + high_params)

    def pattern(self, left: _FieldReference, negated: bool) -> _Fragment:
        if left.type is not FieldType.TEXT:
            raise self.error(left.token, f"LIKE applies to TEXT fields only, not to {left.described()}")
        written = self.peek()
        pattern = self.string("a pattern string after LIKE")
        sql = f"({self.column(left.field)} {'NOT ' if negated else ''}{self.dialect.like} ?"
        params = [pattern]
        if self.keyword("ESCAPE"):
            token = self.peek()
            escape = self.string("an escape character string after ESCAPE")
            if len(escape) != 1:
                raise self.error(token, f"the ESCAPE string must be one character, not {token.shown()}")
            # A pattern ending with its escape character: PostgreSQL refuses it, SQLite matches nothing.
            mark = re.escape(escape)
            if not re.fullmatch(f"(?:[^{mark}]|{mark}.)*", pattern, re.DOTALL):
                raise self.error(written, f"the pattern {written.shown()} ends with its escape character")
            sql += " ESCAPE ?"
            params.append(escape)
        else:
            sql += self.dialect.like_without_escape
        return sql + ")", params

    def operand(self) -> _Operand:
        token = self.next()
        if token.kind == "number":
            return _Literal(FieldType.DOUBLE, self.number(token.text, token), token)
        if token.kind == "sign":
            digits = self.next()
            if digits.kind != "number":
                raise self.error(digits, f"expected a number after {token.shown()}, not {digits.shown()}")
            signed = _Token("number", token.text + digits.text, token.position)
            return _Literal(FieldType.DOUBLE, self.number(signed.text, signed), signed)
        if token.kind == "string":
            return _Literal(None, _unquoted(token.text), token)
        if token.kind == "quoted":
            return _FieldReference(self.field(_unquoted(token.text), token), token)
        if token.kind == "word":
            if (token.is_keyword("DATE") or token.is_keyword("TIMESTAMP")) and self.peek().kind == "string":
                value = self.next()
                spelled = _Token("string", f"{token.text} {value.text}", token.position)
                return _Literal(FieldType.DATE, self.epoch_ms(_unquoted(value.text), spelled), spelled)
            if token.is_keyword("NULL"):
                raise self.error(token, f"{token.shown()} is only written in IS NULL or IS NOT NULL")
            if any(token.is_keyword(keyword) for keyword in _KEYWORDS):
                raise self.error(token, f"expected a field or a value, not the keyword {token.shown()}")
            if self.peek().kind == "punctuation" and self.peek().text == "(":
                raise self.error(token, f"functions such as {token.shown()} are not supported")
            return _FieldReference(self.field(token.text, token), token)
        raise self.error(token, f"expected a field or a value, not {token.shown()}")

    def comparable(self, left: _Operand, right: _Operand) -> tuple[_Operand, _Operand]:
        """Both sides with the types they are compared as: a string literal takes the other side's type (a
        number, a date), and two typed sides must be of one kind."""
        if left.type is None and right.type is not None:
            return self.coerced(left, right), right
        if right.type is None and left.type is not None:
            return left, self.coerced(right, left)
        if left.type == right.type or {left.type, right.type} <= _NUMERIC:
            return left, right
        raise self.error(right.token, f"cannot compare {left.described()} with {right.described()}")

    def coerced(self, literal: _Literal, other: _Operand) -> _Literal:
        if other.type is FieldType.TEXT:
            return _Literal(FieldType.TEXT, literal.value, literal.token)
        if other.type is FieldType.DATE and _ISO_TIME.fullmatch(literal.value):
            return _Literal(FieldType.DATE, self.epoch_ms(literal.value, literal.token), literal.token)
        if other.type in _NUMERIC and _NUMBER.fullmatch(literal.value.strip()):
            return _Literal(FieldType.DOUBLE, self.number(literal.value.strip(), literal.token), literal.token)
        raise self.error(literal.token, f"cannot compare {other.described()} with {literal.described()}")

    def number(self, text: str, token: _Token) -> int | float:
        if _INTEGER.fullmatch(text):
            # Leading zeros off and the length checked before int(): Python refuses to parse more than 4300 digits
            # (zeros included), and SQLite binds 64 bits.
            digits = text.lstrip("+-").lstrip("0") or "0"
            if len(digits) <= 19:
                value = -int(digits) if text.startswith("-") else int(digits)
                if -2 ** 63 <= value < 2 ** 63:
                    return value
        else:
            value = float(text)
            if value not in (float("inf"), float("-inf")):
                return value
        raise self.error(token, f"the number {token.shown()} is out of range")

    def epoch_ms(self, text: str, token: _Token) -> int:
        match = _ISO_TIME.fullmatch(text)
        if match is None:
            raise self.error(token, f"expected a date as 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS', not {token.shown()}")
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        try:
            moment = datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                                       int(second or 0), tzinfo=datetime.timezone.utc)
            if offset and offset != "Z":
                hours, minutes = int(offset[1:3]), int(offset[4:6])
                if hours >= 24 or minutes >= 60:
                    raise ValueError
                moment -= int(offset[0] + "1") * datetime.timedelta(hours=hours, minutes=minutes)
        except (ValueError, OverflowError):
            raise self.error(token, f"{token.shown()} is not a valid date") from None
        milliseconds = int((fraction or "0")[:3].ljust(3, "0"))
        return (moment - _EPOCH) // datetime.timedelta(milliseconds=1) + milliseconds

    def field(self, name: str, token: _Token) -> Field:
        exact = [field for field in self.fields if field.name == name]
        matches = exact or [field for field in self.fields if field.name.casefold() == name.casefold()]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise self.error(token, f"the field name {name!r} matches several fields that differ only in case")
        raise self.error(token, f"unknown field {name!r}")

    def field_on_left(self, left: _Operand, keyword: _Token) -> _FieldReference:
        if not isinstance(left, _FieldReference):
            raise self.error(left.token, f"{keyword.text.upper()} needs a field on its left, not {left.described()}")
        return left

    def string(self, expected: str) -> str:
        token = self.next()
        if token.kind != "string":
            raise self.error(token, f"expected {expected}, not {token.shown()}")
        return _unquoted(token.text)

    def sql(self, operand: _Operand) -> _Fragment:
        if isinstance(operand, _FieldReference):
            return self.column(operand.field), []
        return "?", [operand.value]

    def descend(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(token, f"parentheses and NOT nest at most {MAX_DEPTH} deep; {token.shown()} is one more")

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def next(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        """Consume the next token if it is the bare keyword `word`."""
        if self.peek().is_keyword(word):
            self.index += 1
            return True
        return False

    def punctuation(self, mark: str) -> bool:
        if self.peek().kind == "punctuation" and self.peek().text == mark:
            self.index += 1
            return True
        return False

    def expect_punctuation(self, mark: str) -> None:
        if not self.punctuation(mark):
            raise self.error(self.peek(), f"expected {mark!r}, not {self.peek().shown()}")

    def error(self, token: _Token, what: str) -> ImgsvcError:
        return invalid(f"where: {what} at position {token.position + 1}.", parameter=self.parameter)


def _unquoted(text: str) -> str:
    """The value of a 'string' or a "quoted name": the quotes off, each doubled quote inside made single."""
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote)


def _balanced(operator: str, terms: list[_Fragment]) -> _Fragment:
    """The terms joined by AND or OR as a balanced tree: SQLite refuses expressions nested deeper than 1000 (and
    PostgreSQL's parser recurses on each level), which a left-deep chain of the ORs 8 KiB can hold would pass."""
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    (left, left_params), (right, right_params) = _balanced(operator, terms[:middle]), _balanced(operator, terms[middle:])
    return f"({left} {operator} {right})", left_params + right_params
