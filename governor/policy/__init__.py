"""Policies: YAML in, frozen :class:`~governor.policy.model.Policy` out.

One module per stage, in the order they run (``loader`` drives them):

* ``yamlsrc``: safe YAML with a source map (JSON pointer -> file:line:col)
* ``structure``: the ``apiVersion`` / ``kind`` gate, ``extends`` targets
* ``extends``: merging bases under an overlay, locations preserved
* ``schema_check``: JSON Schema (``governor/schema/policy-v1.json``) with readable messages
* ``semantics``: ids, aliases, prices, regexes, time zones; warnings
* ``revision``: content hash and git facts
* ``build``: compile to the values in ``model``
"""
