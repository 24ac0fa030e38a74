"""Tokenizer and recursive-descent parser for ``when`` conditions.

Grammar::

    expr    := and ('or' and)*
    and     := unary ('and' unary)*
    unary   := 'not' unary | '(' expr ')' | compare
    compare := sum (op sum)+ | value ['not'] 'in' '[' literal (',' literal)* ']'
    sum     := product (('+' | '-') product)*
    product := factor (('*' | '/') factor)*
    factor  := '-' factor | '(' sum ')' | value
    value   := NAME | NAME '(' STRING ')' | NUMBER | STRING          op := == != < <= > >=

A '(' opens arithmetic when what follows its closing ')' continues a comparison (an operator, 'in'), and a
group of conditions otherwise; right after a name it passes that metric family its argument
(``category_amount_12m('图书')``, one ``Name`` whose name is the call as ``metrics.call_name`` writes it).
Columns are 1-based positions in the condition text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from segmenter.errors import InvalidRuleError
from segmenter.metrics import FAMILIES, call_name


class RuleSyntaxError(InvalidRuleError):
    """A condition that does not parse or type-check; ``column`` points at the culprit."""

    def __init__(self, column: int, reason: str) -> None:
        super().__init__(f"column {column}: {reason}")
        self.column = column
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    col: int


@dataclass(frozen=True, slots=True)
class Const:
    value: Decimal | str
    col: int


@dataclass(frozen=True, slots=True)
class Arith:
    """``left op right`` with op one of + - * /: exact arithmetic over metrics and constants."""

    op: str
    left: Operand
    right: Operand
    col: int


Operand = Name | Const | Arith


@dataclass(frozen=True, slots=True)
class Compare:
    left: Operand
    op: str
    right: Operand
    col: int
    text: str


@dataclass(frozen=True, slots=True)
class InList:
    operand: Operand
    values: tuple[Const, ...]
    negated: bool
    col: int
    text: str


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Compare | InList | BoolOp | Not

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
      | (?P<op>==|!=|<=|>=|<|>)
      | (?P<punct>[()\[\],+*/-])
    """,
    re.VERBOSE,
)
KEYWORDS = {"and", "or", "not", "in"}
# Bounds on what an operator may write (a condition is a few comparisons): past them the text is refused with its
# column, before anything is compiled, instead of exhausting the parser's recursion or the compiler.
MAX_LENGTH = 4000  # characters of one condition
MAX_DEPTH = 32  # nested parentheses and 'not'
MAX_DIGITS = 24  # digits of one number (amounts are below 10^15)
OPS = {"==", "!=", "<", "<=", ">", ">="}
ARITH = {"+", "-", "*", "/"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number string name op punct keyword end
    text: str
    col: int


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise RuleSyntaxError(MAX_LENGTH + 1, f"a condition is at most {MAX_LENGTH:,} characters; this one has "
                                              f"{len(text):,}")
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise RuleSyntaxError(pos + 1, f"unexpected character {text[pos]!r}")
        kind = match.lastgroup or ""
        if kind == "number" and len(match.group()) - match.group().count(".") > MAX_DIGITS:
            raise RuleSyntaxError(pos + 1, f"a number of {len(match.group()):,} characters; at most "
                                           f"{MAX_DIGITS} digits")
        if kind != "ws":
            word = match.group()
            if kind == "name" and word in KEYWORDS:
                kind = "keyword"
            tokens.append(Token(kind, word, pos + 1))
        pos = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, text: str, what: str) -> Token:
        if self.tok.text != text:
            raise RuleSyntaxError(self.tok.col, f"expected {what}, found {self._found()}")
        return self.take()

    def _found(self) -> str:
        return "the end of the condition" if self.tok.kind == "end" else repr(self.tok.text)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise RuleSyntaxError(1, "empty condition")
        node = self.expr()
        if self.tok.kind != "end":
            raise RuleSyntaxError(self.tok.col, f"expected 'and', 'or' or the end, found {self._found()}")
        return node

    def expr(self) -> Node:
        items = [self.conj()]
        while self.tok.text == "or" and self.tok.kind == "keyword":
            self.take()
            items.append(self.conj())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def conj(self) -> Node:
        items = [self.unary()]
        while self.tok.text == "and" and self.tok.kind == "keyword":
            self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def unary(self) -> Node:
        if self.tok.kind == "keyword" and self.tok.text == "not":
            self._deeper()
            self.take()
            node: Node = Not(self.unary())
        elif self.tok.text == "(" and not self._arithmetic_group():
            self._deeper()
            self.take()
            node = self.expr()
            self.expect(")", "')'")
        else:
            return self.compare()
        self.depth -= 1
        return node

    def _arithmetic_group(self) -> bool:
        """The '(' here opens arithmetic: the token after its matching ')' continues a comparison."""
        level, i = 0, self.i
        while self.tokens[i].kind != "end":
            text = self.tokens[i].text
            level += (text == "(") - (text == ")")
            if level == 0:
                after = self.tokens[i + 1]
                return after.kind == "op" or after.text in ARITH or (after.kind == "keyword" and
                                                                     after.text in ("in", "not"))
            i += 1
        return False

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleSyntaxError(self.tok.col, f"nested more than {MAX_DEPTH} deep (parentheses and 'not')")

    def value(self) -> Name | Const:
        token = self.tok
        if token.kind == "number":
            return Const(Decimal(self.take().text), token.col)
        if token.kind == "string":
            return Const(self.take().text[1:-1], token.col)
        if token.kind == "name":
            name = self.take().text
            if self.tok.text == "(":
                return Name(self._call(name, token.col), token.col)
            if name in FAMILIES:
                raise RuleSyntaxError(self.tok.col, f"{name} takes a category: {name}('...')")
            return Name(name, token.col)
        raise RuleSyntaxError(token.col, f"expected a metric, a number or a quoted string, found {self._found()}")

    def _call(self, family: str, col: int) -> str:
        """The argument of ``family(`` (the '(' is next): one quoted string, then ')'."""
        if family not in FAMILIES:
            raise RuleSyntaxError(col, f"{family!r} takes no argument; metrics that take one: {', '.join(FAMILIES)}")
        self.take()
        if self.tok.kind != "string":
            raise RuleSyntaxError(self.tok.col, f"expected a quoted category, found {self._found()}")
        argument = self.take().text[1:-1]
        if not argument or len(argument) > 256 or not argument.isprintable():
            raise RuleSyntaxError(col, "a category is 1 to 256 printable characters")
        self.expect(")", "')' after the category")
        return call_name(family, argument)

    def literal(self) -> Name | Const:
        """A list's item: a value, or a negative number."""
        token = self.tok
        if token.text == "-":
            self.take()
            if self.tok.kind != "number":
                raise RuleSyntaxError(self.tok.col, f"expected a number after '-', found {self._found()}")
            return Const(-Decimal(self.take().text), token.col)
        return self.value()

    def sum(self) -> Operand:
        node = self.product()
        while self.tok.text in ("+", "-") and self.tok.kind == "punct":
            op = self.take()
            node = Arith(op.text, node, self.product(), op.col)
        return node

    def product(self) -> Operand:
        node = self.factor()
        while self.tok.text in ("*", "/"):
            op = self.take()
            node = Arith(op.text, node, self.factor(), op.col)
        return node

    def factor(self) -> Operand:
        token = self.tok
        if token.text == "-":
            self.take()
            if self.tok.kind == "number":  # a negative constant stays a constant
                return Const(-Decimal(self.take().text), token.col)
            self._deeper()
            node: Operand = Arith("-", Const(Decimal(0), token.col), self.factor(), token.col)
            self.depth -= 1
            return node
        if token.text == "(":
            self._deeper()
            self.take()
            node = self.sum()
            self.expect(")", "')' to close the arithmetic")
            self.depth -= 1
            return node
        return self.value()

    def compare(self) -> Node:
        start = self.tok.col
        left = self.sum()
        if self.tok.kind == "keyword" and self.tok.text in ("in", "not"):
            return self.in_list(left, start)
        if self.tok.kind != "op":
            raise RuleSyntaxError(
                self.tok.col, f"expected a comparison (== != < <= > >=) or 'in', found {self._found()}"
            )
        parts: list[Compare] = []
        while self.tok.kind == "op":
            op_token = self.take()
            right_start = self.tok.col
            right = self.sum()
            end = self.tokens[self.i - 1]
            text = self.text[start - 1 : end.col - 1 + len(end.text)]
            parts.append(Compare(left, op_token.text, right, op_token.col, text))
            left, start = right, right_start
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def in_list(self, operand: Operand, start: int) -> InList:
        negated = self.take().text == "not"
        if negated:
            self.expect("in", "'in' after 'not'")
        self.expect("[", "'[' to open the list")
        values: list[Const] = []
        while True:
            value = self.literal()
            if not isinstance(value, Const):
                raise RuleSyntaxError(value.col, f"a list holds constants, found metric {value.name!r}")
            values.append(value)
            if self.tok.text == "]":
                break
            self.expect(",", "',' or ']'")
        end = self.take()
        return InList(operand, tuple(values), negated, start, self.text[start - 1 : end.col])


def parse(text: str) -> Node:
    """Parse a condition; raises ``RuleSyntaxError`` with the column on any mistake."""
    return Parser(text).parse()
