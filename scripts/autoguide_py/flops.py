"""FLOPs of one EDM2 network evaluation, from its architecture (multiply and add counted separately).

Counted: every convolution and linear layer (Eq. 47), the 2x2 downsampling filter, and the two attention
products. Left out: pointwise work and the upsampling filter (a transposed depthwise convolution), which are
a fraction of a per cent. Counted with forward hooks on the eager modules of autoguide_py.edm2, because
the profiler's FLOP counter misses operators called from TorchScript.
"""
import torch

from autoguide_py import edm2


def count_flops(net: edm2.Precond, batch: int = 1) -> float:
    """FLOPs per image of net(x, sigma, labels) at the net's own resolution."""
    total = 0

    def mpconv(module, args, out):
        nonlocal total
        w = module.weight
        if w.dim() == 2:  # [N, in] @ [in, out]
            total += 2 * out.shape[0] * w.shape[0] * w.shape[1]
        else:  # each output element sums in_channels x kh x kw products
            total += 2 * out.numel() * w.shape[1] * w.shape[2] * w.shape[3]

    def block(module, args, out):
        nonlocal total
        x = args[0]
        if module.resample_mode == 'down':  # depthwise filter, stride 2
            taps = len(module.resample_taps) ** 2
            total += 2 * x.shape[0] * x.shape[1] * (x.shape[2] // 2) * (x.shape[3] // 2) * taps
        if module.attn_qkv is not None:  # q.k and w.v, each N x C x Q x K multiply-adds
            q = out.shape[2] * out.shape[3]
            total += 2 * 2 * out.shape[0] * out.shape[1] * q * q

    hooks = []
    for m in net.modules():
        if isinstance(m, edm2.MPConv):
            hooks.append(m.register_forward_hook(mpconv))
        elif isinstance(m, edm2.Block):
            hooks.append(m.register_forward_hook(block))
    args = edm2.example_inputs(batch, net.img_channels, net.img_resolution, net.label_dim)
    try:
        with torch.inference_mode():
            net.prepare()
            net(*args)
    finally:
        for h in hooks:
            h.remove()
    return total / batch
