#!/usr/bin/env python3
"""Time `autoguide generate` against NVIDIA's generate_images.py on the same networks, seeds and threads.

Both sides sample the same EDM2 networks with random weights (S architecture as the main net, XS as the
guide, autoguidance): our networks are written as EDM2 pickles, converted with scripts/export_edm2.py for
autoguide, and read with our restricted unpickler into the reference's own Precond for generate_images.py.
The reference comes from a local copy of NVlabs/edm2 (--edm2 DIR) that is never part of this project.

  scripts/bench/bench_generate.py --edm2 /path/to/edm2 --threads 2 --res 32 --seeds 0-7
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),  # this folder's modules
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # scripts/: autoguide_py
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from autoguide_py import edm2  # noqa: E402
from autoguide_py.edm2_checkpoint import extract_network  # noqa: E402
from autoguide_py.edm2_unpickler import load_edm2_pickle  # noqa: E402
from autoguide_py.flops import count_flops  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The random networks are written as EDM2 pickles (what export_edm2.py converts and reference_net reads) by the
# writer the tests use: test code, kept out of the autoguide_py library, hence imported from tests/python.
sys.path.insert(0, os.path.join(ROOT, 'tests', 'python'))
from edm2_pickle_writer import write_edm2_pickle  # noqa: E402


def parse_seeds(text):
    out = []
    for part in text.split(','):
        a, _, b = part.partition('-')
        out.extend(range(int(a), int(b or a) + 1))
    return out


ROLES = (('main', 's'), ('guide', 'xs'))  # EDM2-S main, XS guide


def random_net(size, res, channels, label_dim, seed):
    torch.manual_seed(seed)
    net = edm2.Precond(img_resolution=res, img_channels=channels, label_dim=label_dim,
                       model_channels=edm2.SIZES[size])
    # EDM2 initialises the gains to 0, which would make the output trivial; trained nets have gains near 1.
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith('gain'):
                p.uniform_(0.5, 1.5)
    return net


def make_models(work, res, channels, label_dim):
    paths = {}
    for (role, size), seed in zip(ROLES, (1, 2)):
        tag = f'{size}-{res}' + ('' if channels == 3 else f'c{channels}')
        pkl = os.path.join(work, f'bench-{tag}.pkl')
        pt = os.path.join(work, f'bench-{tag}.pt')
        if not os.path.exists(pt):
            net = random_net(size, res, channels, label_dim, seed)
            write_edm2_pickle(pkl, net.to(torch.float16), encoder='rgb' if channels == 3 else 'vae')
            subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'export_edm2.py'), pkl, pt], check=True)
        paths[role] = (pkl, pt)
    return paths


def reference_net(edm2_dir, pkl, device):
    """The reference's own Precond, filled from our pickle by our restricted unpickler."""
    if edm2_dir not in sys.path:
        sys.path.insert(0, edm2_dir)
    from training import networks_edm2  # the local NVlabs/edm2 copy
    state, init_kwargs, _, _ = extract_network(load_edm2_pickle(pkl))
    net = networks_edm2.Precond(**init_kwargs).to(torch.float16)
    net.load_state_dict(state)
    return net.eval().requires_grad_(False).to(device)


def run_reference(edm2_dir, paths, seeds, guidance, batch, outdir, device, steps=32):
    sys.path.insert(0, edm2_dir)
    import torch.distributed
    from torch_utils import distributed as dist
    import generate_images
    from training.encoders import StandardRGBEncoder
    # The reference always initialises NCCL; one process on one device needs none of it.
    dist.get_rank = lambda: 0
    dist.get_world_size = lambda: 1
    dist.print0 = lambda *a, **k: None
    torch.distributed.barrier = lambda *a, **k: None
    net = reference_net(edm2_dir, paths['main'][0], device)
    gnet = reference_net(edm2_dir, paths['guide'][0], device)
    os.makedirs(outdir, exist_ok=True)
    start = time.perf_counter()
    for _ in generate_images.generate_images(net=net, gnet=gnet, encoder=StandardRGBEncoder(), outdir=outdir,
                                             seeds=seeds, max_batch_size=batch, verbose=False,
                                             device=torch.device(device), guidance=guidance, num_steps=steps):
        pass
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run_ours(binary, paths, seeds_text, guidance, batch, outdir, threads, device, extra=(), steps=32):
    """Returns (process seconds, sampling seconds from the manifest, peak RSS in MiB)."""
    cmd = [binary, 'generate', '--net', paths['main'][1], '--gnet', paths['guide'][1], '--guidance', str(guidance),
           '--seeds', seeds_text, '--batch', str(batch), '--outdir', outdir, '--threads', str(threads),
           '--device', device, '--steps', str(steps), '--overwrite', '--quiet', *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage, for its peak memory
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f'autoguide generate failed: {" ".join(cmd)}')
    with open(os.path.join(outdir, 'manifest.json')) as f:
        return wall, json.load(f)['seconds'], usage.ru_maxrss / 1024


def conv_rate(channels, res, batch, dtype, reps=5):
    """GFLOP/s of one isolated 3x3 convolution (oneDNN), in NCHW and in channels_last: the machine's rate."""
    x = torch.randn(batch, channels, res, res, dtype=dtype)
    w = torch.randn(channels, channels, 3, 3, dtype=dtype) / 30
    flops = 2 * batch * res * res * channels * channels * 9
    rates = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        xl, wl = x.contiguous(memory_format=layout), w.contiguous(memory_format=layout)
        with torch.inference_mode():
            torch.nn.functional.conv2d(xl, wl, padding=1)
            start = time.perf_counter()
            for _ in range(reps):
                torch.nn.functional.conv2d(xl, wl, padding=1)
        rates['nchw' if layout == torch.contiguous_format else 'channels_last'] = \
            flops * reps / (time.perf_counter() - start) / 1e9
    return rates


def net_profile(pt, res, batch, dtype_code, flops_per_image, reps=3):
    """ms per evaluation of one exported net at `batch`, the achieved GFLOP/s, and the share of convolutions.

    Runs the same TorchScript file with the same LibTorch kernels as the CLI (eager, graph optimizer off).
    """
    torch._C._set_graph_executor_optimize(False)
    net = torch.jit.load(pt).eval()
    if dtype_code is not None:
        net.force_dtype = dtype_code
    net.prepare()
    args = edm2.example_inputs(batch, net.img_channels, res, net.label_dim)
    with torch.inference_mode():
        net(*args)
        with torch.profiler.profile() as prof:
            net(*args)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            net(*args)
            times.append(time.perf_counter() - start)
    events = prof.key_averages()
    conv_us = sum(e.self_cpu_time_total for e in events if 'conv' in e.key)
    total_us = sum(e.self_cpu_time_total for e in events)
    best = min(times)
    return {'ms_per_eval': best * 1e3, 'gflop_per_image': flops_per_image / 1e9,
            'gflops': flops_per_image * batch / best / 1e9, 'conv_share_of_time': conv_us / total_us}


def profile_nets(paths, res, channels, batch, variants):
    """Per-net figures for fp32 (and bf16 when a variant uses it) against the machine's 3x3 conv rate."""
    # The FLOPs depend on the architecture only, so a fresh net of each role's size counts them.
    flops = {role: count_flops(random_net(size, res, channels, 1000, 0)) for role, size in ROLES}
    out = {}
    dtypes = [('fp32', None, torch.float32)]
    if any('bf16' in v for v in variants):
        dtypes.append(('bf16', 15, torch.bfloat16))  # 15: c10::ScalarType::BFloat16
    for name, code, dtype in dtypes:
        rates = conv_rate(192, res, batch, dtype)
        entry = {'conv3x3_gflops': rates}
        for role in ('main', 'guide'):
            p = net_profile(paths[role][1], res, batch, code, flops[role])
            p['share_of_channels_last_conv_rate'] = p['gflops'] / rates['channels_last']
            entry[role] = p
        out[name] = entry
    return out


def max_pixel_difference(dir_a, dir_b, seeds):
    import PIL.Image
    worst = 0
    for s in seeds:
        a = np.asarray(PIL.Image.open(os.path.join(dir_a, f'{s:06d}.png')), dtype=np.int16)
        b = np.asarray(PIL.Image.open(os.path.join(dir_b, f'{s:06d}.png')), dtype=np.int16)
        worst = max(worst, int(np.abs(a - b).max()))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--edm2', help='local copy of NVlabs/edm2 (skipped with a message when absent)')
    ap.add_argument('--binary', default=os.path.join(ROOT, 'build', 'autoguide'))
    ap.add_argument('--work', default=os.path.join(ROOT, 'out', 'bench'))
    ap.add_argument('--res', type=int, default=32)
    ap.add_argument('--seeds', default='0-7')
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--guidance', type=float, default=2.1)
    ap.add_argument('--steps', type=int, default=32, help='Heun steps (2 x steps - 1 evaluations of each net)')
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--repeats', type=int, default=1)
    ap.add_argument('--variant', action='append', default=[], metavar='NAME=ARGS',
                    help="also time autoguide with extra options, e.g. bf16='--dtype bf16'; pixel difference vs fp32")
    ap.add_argument('--vae', metavar='FILE',
                    help='ImageNet-512-size run: S and XS on 4-channel latents at --res (64), decoded to pixels by '
                         'this exported VAE (scripts/bench/bench_vae.py makes one); the reference is skipped, as its '
                         'decoder needs a download')
    ap.add_argument('--no-profile', action='store_true',
                    help='skip the per-net figures (ms per evaluation, GFLOP/s against the 3x3 conv rate)')
    ap.add_argument('--profile-only', action='store_true', help='only the per-net figures, no sampling runs')
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    seeds = parse_seeds(args.seeds)
    channels = 4 if args.vae else 3
    paths = make_models(args.work, args.res, channels, 1000)
    extra_ours = ['--vae', args.vae] if args.vae else []
    if args.profile_only:
        print(json.dumps(profile_nets(paths, args.res, channels, args.batch, args.variant), indent=2))
        return
    ours_dir, ref_dir = os.path.join(args.work, 'ours'), os.path.join(args.work, 'reference')
    have_ref = not args.vae and bool(args.edm2) and os.path.exists(os.path.join(args.edm2 or '', 'generate_images.py'))
    if args.vae:
        print('reference: skipped (its VAE decoder is downloaded from Hugging Face)', file=sys.stderr)
    elif not have_ref:
        print('reference: skipped (pass --edm2 DIR with a local copy of NVlabs/edm2)', file=sys.stderr)
    rows = []
    peak_ours = 0.0
    for r in range(args.repeats):  # alternate the two so that drifting machine load hits both alike
        wall, gen, rss = run_ours(args.binary, paths, args.seeds, args.guidance, args.batch, ours_dir, args.threads,
                                  args.device, extra_ours, args.steps)
        ref = run_reference(args.edm2, paths, seeds, args.guidance, args.batch, ref_dir, args.device,
                            args.steps) if have_ref else None
        rows.append((wall, gen, ref))
        peak_ours = max(peak_ours, rss)
        print(f'run {r}: autoguide {gen:.1f} s sampling ({wall:.1f} s process)'
              + (f', reference {ref:.1f} s' if ref else ''), file=sys.stderr)
    n = len(seeds)
    best_ours = min(g for _, g, _ in rows)
    result = {'device': args.device, 'threads': args.threads, 'res': args.res, 'images': n, 'batch': args.batch,
              'steps': args.steps,
              'guidance': args.guidance, 'ours_s_per_image': best_ours / n,
              'ours_process_s': min(w for w, _, _ in rows), 'ours_peak_rss_mib': peak_ours}
    if have_ref:
        best_ref = min(r for _, _, r in rows)
        # The reference ran in this process: its peak includes building the nets, as a user's process would.
        result.update(reference_s_per_image=best_ref / n, speedup=best_ref / best_ours,
                      max_pixel_difference=max_pixel_difference(ours_dir, ref_dir, seeds),
                      reference_peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    for spec in args.variant:  # e.g. lower precision or a guidance interval, against our fp32 images
        name, _, extra = spec.partition('=')
        vdir = os.path.join(args.work, 'variant-' + name)
        _, gen, _ = run_ours(args.binary, paths, args.seeds, args.guidance, args.batch, vdir, args.threads, args.device,
                             extra_ours + extra.split(), args.steps)
        result['variant_' + name] = {'options': extra, 's_per_image': gen / n, 'speedup_vs_ours_fp32': best_ours / gen,
                                     'max_pixel_difference_vs_fp32': max_pixel_difference(vdir, ours_dir, seeds)}
        if have_ref:
            result['variant_' + name]['speedup_vs_reference'] = result['reference_s_per_image'] * n / gen
        print(f'variant {name}: {gen:.1f} s', file=sys.stderr)
    if args.device == 'cpu' and not args.no_profile:
        result['per_net'] = profile_nets(paths, args.res, channels, args.batch, args.variant)
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
