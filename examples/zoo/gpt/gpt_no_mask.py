"""Broken GPT block: the causal mask is never applied (a bidirectional encoder layer).

The next-token loss falls fast because position t can read token t+1: the model learns to copy
the answer, and generation is garbage.
"""

from gpt import CausalSelfAttention, TinyGPT, example_batch, loss_terms  # noqa: F401


class Unmasked(CausalSelfAttention):
    def allowed(self, length):
        return self.mask[:length, :length] | True


def build_model():
    model = TinyGPT()
    model.block.attn.__class__ = Unmasked
    return model
