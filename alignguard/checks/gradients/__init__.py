"""Checks that read per-loss-term gradients measured with autograd on the real model."""
