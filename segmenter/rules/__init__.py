"""Rules: a small condition language, parsed (never eval'd) and compiled to closures."""

from segmenter.rules.compiler import CompiledDimension, CompiledSegment, RuleSet
from segmenter.rules.loader import load_ruleset, ruleset_from_document

__all__ = ["CompiledDimension", "CompiledSegment", "RuleSet", "load_ruleset", "ruleset_from_document"]
