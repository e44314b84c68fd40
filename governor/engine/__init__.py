"""The engine: how one LLM call is decided and accounted. A map, in the order a call meets it.

Entry point
    governor     :class:`Governor`: ``check`` builds a :class:`~decide.CallRequest`
                 and calls :func:`decide.decide`; ``record`` settles what the check
                 reserved; ``reload``/``watch``, ``stats``, ``run``.
    scope        ``with gov.run(...)``: the run scope (metadata and run chain) in a ContextVar.
    tokens       input-token counting, incremental across an agent's growing history
                 (tokenizers: which tokenizer, loaded offline; tool_schema: tools as text).

Compiled once per policy load
    compiled     :class:`CompiledPolicy`: rules with compiled matchers (match), prices, and
                 per (model, metadata) the :class:`View` of the rules whose static part holds,
                 with the floors below which a stage cannot act.
    match        ``match``/``exclude`` compiled into a static and a dynamic predicate.
    generations  the two-generation bounded cache that holds views and budget plans.

The decision: one pipeline, the only place a decision is made
    decide       :func:`decide`: stages 1-6 in order, then the :class:`~governor.decision.Decision`.
    stops        1. stop conditions of the run chain, and the admission of the call (runstate).
    routing      2. the first matching enforced route.
    caps         3. context caps (block / trim / reroute), 4. per-call caps (clamp, cost).
    budgets      5. reserve the worst case on every matching budget (through the Ledger
                 protocol only), 6. soft thresholds (warn / downgrade).
    work         :class:`Work`: the mutable scratch of one check while the stages run.
    runstate     per-run state (calls, errors, cost, fingerprints) for stop conditions.
    adjust       operators' raises, resets and resumes (ledger records), read when stage 1 or 5
                 would refuse a call.

After the decision
    pending      allowed calls awaiting ``record()`` (what they were decided with).
    settle_queue settlements the store refused while down, retried later.
    stats        running totals by run / user / team / model.
    observed     calls made without a check (a coding-agent hook), accounted after the fact.
    decision_log the JSON decision log and ``record_to`` traces (trace_recorder).
    reload       loading a changed policy with errors logged; the file watcher.

Imports go one way: governor -> decide -> stages -> compiled/match/runstate/work -> governor.ledger.
"""
