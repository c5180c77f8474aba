"""Rules: one YAML declaration per rule, from which every instrument is derived."""

from ungrok.rules.expand import (
    ITEM_FIELDS,
    derived_ngram_patterns,
    expand_probes,
    margin_prompts,
    ngram_patterns,
)
from ungrok.rules.registry import (
    get_rule,
    lists_for,
    load_rule_file,
    load_rules,
    load_shared_lists,
)
from ungrok.rules.spec import RuleSpec, fill, resolve_list
from ungrok.rules.tokens import CueTokens, RuleTokens, resolve_tokens

__all__ = [
    "ITEM_FIELDS",
    "CueTokens",
    "RuleSpec",
    "RuleTokens",
    "derived_ngram_patterns",
    "expand_probes",
    "fill",
    "get_rule",
    "lists_for",
    "load_rule_file",
    "load_rules",
    "margin_prompts",
    "ngram_patterns",
    "resolve_list",
    "resolve_tokens",
    "load_shared_lists",
]
