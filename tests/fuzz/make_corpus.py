#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small valid inputs of every kind
each parser reads, so that the fuzzers start from the formats' real structure. Committed; rerun only to change
them:  /usr/bin/python3 tests/fuzz/make_corpus.py
The corpora also hold, beside these, the inputs that once crashed a target (crash_*, empty_idat.png): kept so that
every CI run tries them again. This script leaves them alone.
"""
import io
import json
import os
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write(target, name, data):
    folder = os.path.join(HERE, 'corpus', target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), 'wb') as f:
        f.write(data.encode() if isinstance(data, str) else data)


def npy_bytes(array, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array)
    else:
        np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def png_bytes(image, **options):
    buf = io.BytesIO()
    image.save(buf, format='PNG', **options)
    return buf.getvalue()


def main():
    for i, text in enumerate(['0-63', '1,2,5-10', '42', '7-7', '0-3,100,5-9', '18446744073709551616', '1,,2']):
        write('seed_list', f'{i}.txt', text)
    for i, text in enumerate(['1,1.5,2.1', '1:3:0.25', '1:2:0.1', '0.28,2.9', '17,22', '2e-3,3.4e38', '0,1']):
        write('option_values', f'{i}.txt', text)

    for name in ('demo.json', 'edm2.json'):
        with open(os.path.join(ROOT, 'configs', name), 'rb') as f:
            write('preset_json', name, f.read())
    write('preset_json', 'small.json', json.dumps({'presets': {'a': {'net': 'a.pt', 'gnet': 'b.pt', 'guidance': 2.1,
                                                                     'reported': {'fid': 1.5}}}}))

    rgb = {'format_version': 1, 'img_resolution': 8, 'img_channels': 3, 'label_dim': 10, 'sigma_data': 0.5,
           'use_fp16': False, 'model_size': None, 'model_channels': 32, 'channel_mult': [1, 2], 'num_blocks': 1,
           'attn_resolutions': [4], 'param_count': 123456, 'training_kimg': None, 'ema_std': None,
           'encoder': {'type': 'rgb'}, 'source_file': 'main-fixture', 'source_sha256': None,
           'exporter': 'autoguide 0.1.0'}
    write('model_metadata', 'rgb.json', json.dumps(rgb, indent=2))
    latent = dict(rgb, img_resolution=64, img_channels=4, label_dim=1000, training_kimg=2147483, ema_std=0.135,
                  encoder={'type': 'vae', 'vae_name': 'stabilityai/sd-vae-ft-mse',
                           'scale': [0.1199, 0.1082, 0.1348, 0.1524], 'bias': [-0.6967, -0.3517, -0.0162, 0.3277]})
    write('model_metadata', 'latent.json', json.dumps(latent))
    write('model_metadata', 'vae.json', json.dumps({'kind': 'vae', 'format_version': 1, 'latent_channels': 4,
                                                    'scale_factor': 8, 'out_channels': 3, 'source_file': 'x'}))

    write('npy', 'f32.npy', npy_bytes(np.arange(6, dtype=np.float32).reshape(2, 3)))
    write('npy', 'u8_images.npy', npy_bytes(np.arange(48, dtype=np.uint8).reshape(1, 3, 4, 4)))
    write('npy', 'f64_v2.npy', npy_bytes(np.eye(2), version=(2, 0)))
    write('npy', 'i64_scalar.npy', npy_bytes(np.array(7, dtype=np.int64)))
    write('npy', 'empty.npy', npy_bytes(np.zeros((0, 3), dtype=np.float32)))
    write('npy', 'fortran.npy', npy_bytes(np.asfortranarray(np.ones((2, 2), dtype=np.float32))))

    mu, sigma = np.arange(3, dtype=np.float64), np.eye(3)
    write('npz', 'stats.npz', npz_bytes(mu=mu, sigma=sigma, num_images=np.array(10, dtype=np.int64)))
    write('npz', 'edm_ref.npz', npz_bytes(mu=mu, sigma=sigma))
    buf = io.BytesIO()
    np.savez_compressed(buf, mu=mu)
    write('npz', 'compressed.npz', buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        # Fixed time stamps keep the file the same on every run.
        z.writestr(zipfile.ZipInfo('notes.txt', (1980, 1, 1, 0, 0, 0)), 'not an array')
        z.writestr(zipfile.ZipInfo('mu.npy', (1980, 1, 1, 0, 0, 0)), npy_bytes(mu))
    write('npz', 'mixed.npz', buf.getvalue())

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    write('png', 'rgb.png', png_bytes(Image.fromarray(pixels[..., :3])))
    write('png', 'rgba.png', png_bytes(Image.fromarray(pixels)))
    write('png', 'grey.png', png_bytes(Image.fromarray(pixels[..., 0])))
    write('png', 'grey_alpha.png', png_bytes(Image.fromarray(pixels[..., :2].copy(), 'LA')))
    write('png', 'grey16.png', png_bytes(Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)))
    write('png', 'palette.png', png_bytes(Image.fromarray(pixels[..., :3]).quantize(8)))
    palette = Image.fromarray(pixels[..., :3]).quantize(4)
    write('png', 'palette_trns.png', png_bytes(palette, transparency=0))
    write('png', 'bilevel.png', png_bytes(Image.fromarray(pixels[..., 0] > 128)))
    write('png', 'interlaced.png', _interlaced(pixels[..., :3]))


def _interlaced(rgb):
    # PIL writes no Adam7 PNGs; this one is assembled by hand (8-bit RGB, each pass's rows filter 0).
    h, w = rgb.shape[:2]
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b''
    for x0, y0, dx, dy in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            raw += b''.join(b'\0' + row.tobytes() for row in sub)

    def chunk(kind, body):
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 1)) +
            chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


if __name__ == '__main__':
    main()
