"""``new_decision(...)``: the Decision of every check, built with its 19 fields positional.

The frozen dataclass ``__init__`` does ``object.__setattr__(self, "name", v)`` per
field; setting the slots through their descriptors, unrolled, costs about half.
"""

from __future__ import annotations

from governor._slots import slots_constructor
from governor.decision import Decision

# verdict, model, messages, max_tokens, rule_ids, reasons, revision, estimated_cost_usd, decision_id,
# requested_model, input_tokens, input_tokens_estimated, warnings, audit, policy_name, metadata,
# block_kind, fallbacks, blocked_by -- Decision's field order
new_decision = slots_constructor(Decision, positional=True)
