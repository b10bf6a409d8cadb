"""`alignguard mutate`: prove a spec is strong enough by breaking the model on purpose.

Operators (`operators/`) find where a design-breaking change applies in the analysed model
(`analysis.py`) and yield mutants (`mutant.py`): fx rewrites of one module's own code
(`fx_edit.py`, `tracing.py`), replaced forwards, or wrapped loss terms. `runner.py` checks each
mutant with the full checker; `report.py` and `render.py` say which were killed, and for each
survivor the spec rule that would have caught it.
"""
