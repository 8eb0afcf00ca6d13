"""Write pickles in the on-disk format of NVlabs/edm2, without EDM2's code (tests and scripts/bench_generate.py).

EDM2's training loop does `pickle.dump(EasyDict(encoder=..., dataset_kwargs=..., loss_fn=...,
ema=net_fp16), f)` with the default protocol (4), where the networks, encoder and loss are
`torch_utils.persistence` objects that pickle as `_reconstruct_persistent_obj(meta)` with the
defining module's source in `meta`. This module reproduces that byte format from one of our
`edm2.Precond` networks: a pure-Python pickler whose placeholder objects emit exactly the
opcodes (globals, REDUCE, NEWOBJ, BUILD, memo references) that stock pickling produces, and
tensor storages as `torch.storage._load_from_bytes(<legacy torch.save blob>)`.

It also writes malicious pickles for the refusal tests: each would create a marker file if a
normal unpickler loaded it.
"""

import collections
import io
import os
import pickle
import struct

import numpy as np
import torch

# Stand-ins for the embedded module sources (real pickles carry whole .py files). One string
# object per defining module, so the pickle memo stores each once, as in real files.
NETWORK_SRC = '# training/networks_edm2.py (stand-in)\nclass Precond: pass\nclass UNet: pass\n'
ENCODER_SRC = '# training/encoders.py (stand-in)\nclass StabilityVAEEncoder: pass\n'
LOSS_SRC = '# training/training_loop.py (stand-in)\nclass EDM2Loss: pass\n'

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_STORAGE_NAMES = {torch.float16: 'HalfStorage', torch.float32: 'FloatStorage', torch.float64: 'DoubleStorage',
                  torch.bfloat16: 'BFloat16Storage'}

# ----------------------------------------------------------------------------
# Placeholders and the pickler that writes them.


class Global:
    """A reference to module.name, written as (STACK_)GLOBAL. Use `G()` so each is one object."""

    def __init__(self, module, name):
        self.module, self.name = module, name


_globals = {}


def G(module, name):
    return _globals.setdefault((module, name), Global(module, name))


class Reduce:
    """func(*args), then BUILD with state if given: what __reduce__ tuples pickle as."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state


class NewObj:
    """cls.__new__(cls) (NEWOBJ), then dict items (SETITEMS), then BUILD with state."""

    def __init__(self, cls, items=None, state=None):
        self.cls, self.items, self.state = cls, items, state


class Persistent:
    """A BINPERSID record (used inside legacy storage blobs)."""

    def __init__(self, pid):
        self.pid = pid


class Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Persistent) else None

    def _save_global_ref(self, obj):
        if self.proto >= 4:
            self.save(obj.module)
            self.save(obj.name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode('utf-8'))
        self.memoize(obj)

    def _save_reduce_ref(self, obj):
        self.save(obj.func)
        self.save(obj.args)
        self.write(pickle.REDUCE)
        self.memoize(obj)
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    def _save_newobj_ref(self, obj):
        self.save(obj.cls)
        self.save(())
        self.write(pickle.NEWOBJ)
        self.memoize(obj)
        if obj.items:
            self._batch_setitems(iter(obj.items))
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    dispatch[Global] = _save_global_ref
    dispatch[Reduce] = _save_reduce_ref
    dispatch[NewObj] = _save_newobj_ref


def dumps(obj, protocol=4):
    buf = io.BytesIO()
    Pickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


# ----------------------------------------------------------------------------
# Tensors, as torch pickles them.


def legacy_storage_bytes(tensor, key='94371024012032', inner_global=None):
    """The blob TypedStorage.__reduce__ passes to _load_from_bytes: torch.save(storage) in the
    legacy (non-zip) format. `inner_global` replaces the storage class (for malicious tests)."""
    flat = tensor.detach().contiguous().view(-1)
    storage_class = inner_global or G('torch', _STORAGE_NAMES[flat.dtype])
    out = io.BytesIO()
    for header in (_LEGACY_MAGIC, 1001,
                   {'protocol_version': 1001, 'little_endian': True,
                    'type_sizes': {'short': 2, 'int': 4, 'long': 4}}):
        pickle.dump(header, out, protocol=2)
    Pickler(out, protocol=2).dump(Persistent(('storage', storage_class, key, 'cpu', flat.numel(), None)))
    pickle.dump([key], out, protocol=2)
    out.write(struct.pack('<q', flat.numel()))
    raw = flat.view(torch.int16) if flat.dtype in (torch.float16, torch.bfloat16) else flat
    out.write(raw.numpy().tobytes())
    return out.getvalue()


def _empty_ordered_dict():
    # A real one, so that its class is memoized together with the modules' OrderedDicts.
    return collections.OrderedDict()


def tensor_ref(tensor):
    storage = Reduce(G('torch.storage', '_load_from_bytes'), (legacy_storage_bytes(tensor),))
    t = tensor.detach().contiguous()
    return Reduce(G('torch._utils', '_rebuild_tensor_v2'),
                  (storage, 0, tuple(t.shape), tuple(t.stride()), False, _empty_ordered_dict()))


def parameter_ref(tensor):
    return Reduce(G('torch._utils', '_rebuild_parameter'), (tensor_ref(tensor), False, _empty_ordered_dict()))


def ndarray_ref(array, numpy_module='numpy.core.multiarray'):
    """A float32/float64 ndarray as numpy pickles it (protocol < 5)."""
    array = np.ascontiguousarray(array)
    dtype = Reduce(G('numpy', 'dtype'), (array.dtype.str[1:], False, True),
                   state=(3, '<', None, None, None, -1, -1, 0))
    return Reduce(G(numpy_module, '_reconstruct'), (G('numpy', 'ndarray'), (0,), b'b'),
                  state=(1, array.shape, dtype, False, array.tobytes()))


# ----------------------------------------------------------------------------
# Objects of an EDM2 snapshot.


def persistent_ref(class_name, state, module_src):
    meta = {'type': 'class', 'version': 6, 'module_src': module_src, 'class_name': class_name, 'state': state}
    return Reduce(G('torch_utils.persistence', '_reconstruct_persistent_obj'), (meta,))


def _module_state(params, buffers, modules, attrs):
    # nn.Module.__dict__ as torch 2.x has it, in that order, then the subclass's attributes.
    od = collections.OrderedDict
    state = {'training': False, '_parameters': od(params), '_buffers': od(buffers),
             '_non_persistent_buffers_set': set()}
    for hook in ('_backward_pre_hooks', '_backward_hooks'):
        state[hook] = od()
    state['_is_full_backward_hook'] = None
    for hook in ('_forward_hooks', '_forward_hooks_with_kwargs', '_forward_hooks_always_called',
                 '_forward_pre_hooks', '_forward_pre_hooks_with_kwargs', '_state_dict_hooks',
                 '_state_dict_pre_hooks', '_load_state_dict_pre_hooks', '_load_state_dict_post_hooks'):
        state[hook] = od()
    state['_modules'] = od(modules)
    state.update(attrs)
    return state


_ATTRS = {
    'Precond': ('img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'sigma_data'),
    'UNet': ('label_balance', 'concat_balance'),
    'Block': ('out_channels', 'flavor', 'resample_filter', 'resample_mode', 'num_heads', 'dropout',
              'res_balance', 'attn_balance', 'clip_act'),
    'MPConv': ('out_channels',),
    'MPFourier': (),
}
_OPTIONAL_CHILDREN = {'Block': ('conv_skip', 'attn_qkv', 'attn_proj'), 'UNet': ('emb_label',)}


def module_ref(module, dtype, init_kwargs=None):
    """An edm2 module (or ModuleDict) as EDM2 pickles it, tensors cast to dtype like `.to(dtype)`."""
    cast = (lambda t: t.to(dtype)) if dtype is not None else (lambda t: t)
    params = [(n, parameter_ref(cast(p))) for n, p in module._parameters.items()]
    buffers = [(n, tensor_ref(cast(b))) for n, b in module._buffers.items()]
    children = [(n, module_ref(m, dtype)) for n, m in module._modules.items() if m is not None]
    if isinstance(module, torch.nn.ModuleDict):
        return NewObj(G('torch.nn.modules.container', 'ModuleDict'),
                      state=_module_state(params, buffers, children, {}))
    name = type(module).__name__
    attrs = {}
    for key in _ATTRS[name]:
        value = getattr(module, key)
        attrs[key] = int(value) if key == 'clip_act' and value is not None and value == int(value) else value
    if name == 'Block':
        attrs['resample_filter'] = [int(v) if v == int(v) else v for v in module.resample_filter]
    for key in _OPTIONAL_CHILDREN.get(name, ()):
        if getattr(module, key) is None:
            attrs[key] = None
    attrs['_init_args'] = ()
    attrs['_init_kwargs'] = dict(init_kwargs or {})
    return persistent_ref(name, _module_state(params, buffers, children, attrs), NETWORK_SRC)


VAE_SCALE = np.float32(0.5) / np.float32([4.17, 4.62, 3.71, 3.28])
VAE_BIAS = np.float32(0) - np.float32([5.81, 3.25, 0.12, -2.15]) * VAE_SCALE


def encoder_ref(kind, numpy_module='numpy.core.multiarray'):
    if kind == 'rgb':
        return persistent_ref('StandardRGBEncoder', {'_init_args': (), '_init_kwargs': {}}, ENCODER_SRC)
    state = {'vae_name': 'stabilityai/sd-vae-ft-mse', 'scale': ndarray_ref(VAE_SCALE, numpy_module),
             'bias': ndarray_ref(VAE_BIAS, numpy_module), 'batch_size': 8, '_vae': None,
             '_init_args': (), '_init_kwargs': {}}
    return persistent_ref('StabilityVAEEncoder', state, ENCODER_SRC)


def edm2_init_kwargs(net):
    """Precond keywords as EDM2's train_edm2.py records them, plus any non-default architecture."""
    cfg = net.config
    kwargs = {'model_channels': cfg.get('model_channels', 192), 'dropout': cfg.get('dropout', 0.0),
              'use_fp16': net.use_fp16, 'img_resolution': net.img_resolution,
              'img_channels': net.img_channels, 'label_dim': net.label_dim}
    for key, value in cfg.items():
        if key not in kwargs and key not in ('sigma_data', 'logvar_channels'):
            kwargs[key] = value
    return kwargs


def snapshot_ref(net, encoder='vae', dtype=torch.float16, include_ema=True, init_kwargs=None,
                 numpy_module='numpy.core.multiarray'):
    """The EasyDict that EDM2's training loop pickles, with `net` as its ema network."""
    items = []
    if encoder is not None:
        items.append(('encoder', encoder_ref(encoder, numpy_module)))
    dataset = NewObj(G('dnnlib.util', 'EasyDict'),
                     items=[('class_name', 'training.dataset.ImageFolderDataset'),
                            ('path', 'datasets/img512-sd.zip'), ('use_labels', net.label_dim > 0)])
    items.append(('dataset_kwargs', dataset))
    loss = persistent_ref('EDM2Loss', {'P_mean': -0.4, 'P_std': 1.0, 'sigma_data': 0.5, '_init_args': (),
                                       '_init_kwargs': {'P_mean': -0.4, 'P_std': 1.0}}, LOSS_SRC)
    items.append(('loss_fn', loss))
    if include_ema:
        kwargs = edm2_init_kwargs(net) if init_kwargs is None else init_kwargs
        items.append(('ema', module_ref(net, dtype, kwargs)))
    return NewObj(G('dnnlib.util', 'EasyDict'), items=items)


def write_edm2_pickle(path, net, encoder='vae', dtype=torch.float16, **kwargs):
    """Write `net` (an edm2.Precond) as an EDM2 snapshot pickle; returns path.

    encoder: 'vae', 'rgb' or None (no encoder entry). dtype: the weights' stored dtype
    (EDM2 stores float16). Other keywords go to snapshot_ref.
    """
    with open(path, 'wb') as f:
        f.write(dumps(snapshot_ref(net, encoder=encoder, dtype=dtype, **kwargs)))
    return path


# ----------------------------------------------------------------------------
# Malicious pickles.


def malicious_pickles(marker):
    """name -> pickle bytes; loading any of them with pickle.load would create `marker`."""
    touch = f'open({marker!r}, "w").close()'
    call = lambda module, name, *args: Reduce(G(module, name), tuple(args))  # noqa: E731
    imported = call('importlib', 'import_module', 'os')
    payloads = {
        'os_system': call('os', 'system', f'touch {marker}'),
        'posix_system': call('posix', 'system', f'touch {marker}'),
        'builtins_eval': call('builtins', 'eval', touch),
        'builtins_exec': call('builtins', 'exec', touch),
        'subprocess_popen': call('subprocess', 'Popen', ['touch', marker]),
        'subprocess_call': call('subprocess', 'call', ['touch', marker]),
        # import_module first (so it is the first global met), then getattr(os, 'system')(...).
        'importlib_import_module': {'module': imported,
                                    'run': Reduce(call('builtins', 'getattr', imported, 'system'),
                                                  (f'touch {marker}',))},
    }
    blobs = {name: dumps(p) for name, p in payloads.items()}

    # A well-formed snapshot whose ema network smuggles a call in an attribute.
    net_state = _module_state([], [], [], {'img_resolution': 8, 'payload': payloads['os_system']})
    blobs['nested_in_snapshot'] = dumps(NewObj(G('dnnlib.util', 'EasyDict'), items=[
        ('ema', persistent_ref('Precond', net_state, NETWORK_SRC))]))

    # Module source that plain EDM2 loading would exec (torch_utils.persistence does so).
    evil_src = f'import os\n{touch}\nclass Precond:\n    pass\n'
    blobs['persistent_module_src'] = dumps(NewObj(G('dnnlib.util', 'EasyDict'), items=[
        ('ema', persistent_ref('Precond', _module_state([], [], [], {}), evil_src))]))

    # A tensor storage blob whose inner pickle names os.system instead of a storage class.
    blob = legacy_storage_bytes(torch.zeros(2), inner_global=Global('os', 'system'))
    blobs['storage_blob_global'] = dumps(Reduce(G('torch.storage', '_load_from_bytes'), (blob,)))
    return blobs


def write_malicious_pickles(folder, marker):
    """Write each malicious pickle as folder/<name>.pkl; returns name -> path."""
    paths = {}
    for name, data in malicious_pickles(marker).items():
        paths[name] = os.path.join(folder, f'{name}.pkl')
        with open(paths[name], 'wb') as f:
            f.write(data)
    return paths
