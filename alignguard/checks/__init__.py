"""The checks, in three rooms by the evidence they rest on: structure/, gradients/, probes/.

`catalogue.py` lists them in report order; `context.py` is what a check may read; `waivers.py`
applies the spec's waivers after every check.
"""
