"""Black-box numerical probes: run the real model, read and intervene on design symbols."""
