"""Checks that read the forward graph captured in train mode (torch.fx, or the fallback capture)."""
