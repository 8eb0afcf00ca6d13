"""Attention from ops that every LibTorch we load has, for tracing models that call F.scaled_dot_product_attention.

facebookresearch/dinov2 computes attention with `torch.nn.functional.scaled_dot_product_attention`
(dinov2/layers/attention.py). torch 1.13 (Debian's) has no such function, so the repository's forward
raises AttributeError there; torch >= 2 has it, but a trace would then record
`aten::scaled_dot_product_attention`, an operator LibTorch 1.13 cannot load. `plain_attention()` puts
softmax(Q Kᵀ / √d) V, written with matmul and softmax, in that function's place: where the op is missing,
and always while tracing. The repository looks the function up on every call, so replacing the module
attribute reaches it without touching its code.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ExportError

OP_NAME = 'scaled_dot_product_attention'
TRACED_OP = f'aten::{OP_NAME}'


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None) -> Tensor:
    """softmax(Q Kᵀ · scale + mask) V over the last two dimensions; scale defaults to 1/√d (torch's op in eval)."""
    if dropout_p:
        # Dropout would make features random; a detector is exported in eval mode, where it is 0.
        raise ExportError(f'the model asks for attention dropout {dropout_p} while exporting; '
                          f'it must be in eval mode')
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = (query * scale) @ key.transpose(-2, -1)
    if is_causal:
        n, m = scores.shape[-2], scores.shape[-1]
        attn_mask = torch.ones([n, m], dtype=torch.bool, device=scores.device).tril()
    if attn_mask is not None:
        # A boolean mask says which positions may be attended to; a float mask is added to the scores.
        scores = scores.masked_fill(~attn_mask, float('-inf')) if attn_mask.dtype == torch.bool else scores + attn_mask
    return scores.softmax(dim=-1) @ value


@contextlib.contextmanager
def plain_attention(always=False):
    """Within the block F.scaled_dot_product_attention is the function above where torch lacks it, or
    whenever `always` (set while tracing, so that the graph holds only matmul and softmax)."""
    missing = not hasattr(F, OP_NAME)
    if not (missing or always):
        yield
        return
    saved = getattr(F, OP_NAME, None)
    setattr(F, OP_NAME, scaled_dot_product_attention)
    try:
        yield
    finally:
        if missing:
            delattr(F, OP_NAME)
        else:
            setattr(F, OP_NAME, saved)


def check_no_fused_attention(traced, what):
    """ExportError if the traced graph still calls the fused op (the model reached it other than through
    torch.nn.functional, e.g. through a name bound at import time): LibTorch 1.13 could not load the file."""
    if TRACED_OP in str(traced.inlined_graph):
        raise ExportError(f'the traced {what} graph calls {TRACED_OP}, which LibTorch 1.13 cannot load '
                          f'(the model calls it other than as torch.nn.functional.{OP_NAME}); '
                          f'export with torch 1.13 or a model that calls it through torch.nn.functional')
