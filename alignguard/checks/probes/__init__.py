"""Checks that run the real model under controlled interventions (black-box probes)."""
