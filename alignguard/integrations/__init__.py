"""Adapters that put the alignment gate into other tools' loops (Lightning; pytest lives in
alignguard.pytest_plugin). Each imports its tool only when used."""
