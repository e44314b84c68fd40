"""``governor suggest``: the caps and stops that save the most on a user's own runs without stopping accepted work.

Map: :mod:`.split` (fit on the earlier runs, hold out the rest),
:mod:`.knobs` (the knobs, and candidate values measured on the accepted fit
runs), :mod:`.sweep` (candidate policies built once each and replayed through
the production path, in parallel), :mod:`.figures` (a candidate against the
base, run by run), :mod:`.pick` (default pick and Pareto frontier),
:mod:`.routes` (route candidates, priced as an assumption), :mod:`.build`
(``suggest()``, the whole pipeline), :mod:`.emit` (the reviewable YAML and its
``*.test.yaml``) and :mod:`.render` (text, Markdown, JSON, HTML).
"""
