"""Caps on what users can make Vigil do per packet, shared by config, API and stages.

Each rule costs work on every event (the alerts stage) and every natural-language rule is
asked in every packet's prompt (the analyzer), so their number is bounded; so is what one
event stores per rule. See docs/security.md for the figures behind the numbers.
"""

MAX_RULES = 256  # rules in the registry
MAX_PROMPT_RULES = 32  # natural-language rules (32 x 500 characters: ~4k prompt tokens at most)
MAX_RULE_RESULTS = 64  # per-rule results one event keeps (matches first)
MAX_EVIDENCE = 300  # characters of evidence per rule result
