"""Rules: a small condition language, parsed by its own parser (the text is never run) and compiled to functions
from the parsed tree (see ``compiler``)."""

from segmenter.rules.compiler import CompiledDimension, RuleSet
from segmenter.rules.conditions import CompiledSegment
from segmenter.rules.loader import load_ruleset, ruleset_from_document

__all__ = ["CompiledDimension", "CompiledSegment", "RuleSet", "load_ruleset", "ruleset_from_document"]
