"""Fashion-MNIST from Debian's dataset-fashion-mnist, as EDM2-style training images.

The IDX files hold 28x28 uint8 images; the demo networks see them padded to 32x32 (the
U-Net halves the resolution three times) with the padding at the background value 0.
"""

import gzip
import os
import struct

import numpy as np
import torch

DEFAULT_DIR = '/usr/share/datasets/fashion-mnist'
CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
           'Ankle boot']
RESOLUTION = 32
_FILES = {'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
          'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')}


class DatasetError(Exception):
    pass


def _read_idx(path, want_dims):
    try:
        with gzip.open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        raise DatasetError(f'cannot read {path}: {e}; install dataset-fashion-mnist (scripts/setup.sh)') from None
    zero, dtype_code, dims = struct.unpack('>HBB', data[:4])
    if zero != 0 or dtype_code != 0x08 or dims != want_dims:
        raise DatasetError(f'{path} is not a {want_dims}-D uint8 IDX file')
    shape = struct.unpack(f'>{dims}I', data[4:4 + 4 * dims])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise DatasetError(f'{path} is truncated')
    return body.reshape(shape)


def load(split='train', root=DEFAULT_DIR):
    """(images uint8 [N, 1, 32, 32], labels int64 [N]) of the 'train' or 'test' split."""
    image_file, label_file = _FILES[split]
    images = _read_idx(os.path.join(root, image_file), 3)
    labels = _read_idx(os.path.join(root, label_file), 1)
    if len(images) != len(labels):
        raise DatasetError(f'{root}: {len(images)} images but {len(labels)} labels in the {split} split')
    pad = (RESOLUTION - images.shape[1]) // 2
    padded = np.zeros((len(images), 1, RESOLUTION, RESOLUTION), np.uint8)
    padded[:, 0, pad:pad + images.shape[1], pad:pad + images.shape[2]] = images
    return torch.from_numpy(padded), torch.from_numpy(labels.astype(np.int64))


def to_model_range(images):
    """uint8 pixels to the networks' [-1, 1] (the inverse of autoguide's pixel decoding)."""
    return images.to(torch.float32) / 127.5 - 1
