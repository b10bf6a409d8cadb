"""Stand-ins for a model file's module in tests that only call it: eval/train switch a flag."""

from __future__ import annotations


class ModuleStandIn:
    """What panel_recovery and the probes call on a module besides forward: eval() and train()."""

    training = False

    def eval(self):
        self.training = False
        return self

    def train(self, mode: bool = True):
        self.training = mode
        return self
