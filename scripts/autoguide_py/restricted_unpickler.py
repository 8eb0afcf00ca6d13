"""A pickle reader that runs nothing the file names: the whitelist machinery the EDM2 and checkpoint readers share.

`RestrictedUnpickler` is pickle's pure-Python unpickler with each opcode that calls or changes an object checked;
a subclass names the globals it resolves (each to a function of ours that builds plain data) and the types it
lets the file create or update. Any other global is refused before it is looked up.
"""

import _compat_pickle
import pickle

from .errors import Refusal, shown


def global_name(module, name):
    # Protocol-2 pickles spell Python 3 modules by their Python 2 names (subprocess -> commands).
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return shown(f'{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}')


_PLAIN = (str, int, float, bool, type(None), bytes)


def _is_plain_key(key):
    return type(key) in _PLAIN or (type(key) is tuple and len(key) <= 16 and all(type(v) in _PLAIN for v in key))


def _plain_set(items=()):
    # builtins.set as a pickle may call it: on a list of plain members (see RestrictedUnpickler._check_keys).
    if not (isinstance(items, (list, tuple)) and all(_is_plain_key(k) for k in items)):
        raise Refusal('it builds a set of nested values (hashing them could take unbounded time)')
    return set(items)


def _plain_frozenset(items=()):
    return frozenset(_plain_set(items))


# What builtins.set and frozenset resolve to for a reader that allows them (protocol-2 pickles spell sets so).
SET_GLOBALS = {
    ('builtins', 'set'): _plain_set, ('__builtin__', 'set'): _plain_set,
    ('builtins', 'frozenset'): _plain_frozenset, ('__builtin__', 'frozenset'): _plain_frozenset,
}


class RestrictedUnpickler(pickle._Unpickler):
    """pickle's own pure-Python unpickler with a whitelist, so that every opcode that calls or changes an object
    can be checked (the C unpickler checks only globals):

    - globals come from the table `GLOBALS` only, by exact (module, name): no dotted attribute paths;
    - BUILD updates only objects of `BUILD_TYPES` that this load created, never a class or function of the
      table itself (which would change the reader for every later file in the process);
    - NEWOBJ creates only `NEWOBJ_TYPES`; INST and OBJ (protocol 0/1 calls) are refused.
    """

    GLOBALS = {}
    BUILD_TYPES = ()
    NEWOBJ_TYPES = ()
    WHAT = 'EDM2 network pickles'

    def find_class(self, module, name):
        target = self.GLOBALS.get((module, name))
        if target is None:
            raise Refusal(f"it references the Python global '{global_name(module, name)}', which {self.WHAT} "
                          f'never contain (nothing in the file was executed)')
        return target

    def _refuse(self, what):
        raise Refusal(f'it {what}, which {self.WHAT} never do (nothing in the file was executed)')

    def _load_build(self):
        inst, state = self.stack[-2], self.stack[-1]
        if type(inst) not in self.BUILD_TYPES:
            self._refuse(f'sets the state of {_describe_object(inst)} (BUILD)')
        if not hasattr(inst, '__setstate__') and not (isinstance(state, dict) and all(
                isinstance(k, str) and not k.startswith('__') for k in state)):
            self._refuse(f'sets attributes of {_describe_object(inst)} other than its plain data (BUILD)')
        pickle._Unpickler.load_build(self)

    def _check_newobj(self, cls):
        if not (isinstance(cls, type) and cls in self.NEWOBJ_TYPES):
            self._refuse(f'creates {_describe_object(cls)} (NEWOBJ)')

    def _load_newobj(self):
        self._check_newobj(self.stack[-2])
        pickle._Unpickler.load_newobj(self)

    def _load_newobj_ex(self):
        self._check_newobj(self.stack[-3])
        pickle._Unpickler.load_newobj_ex(self)

    def _load_inst_or_obj(self):
        self._refuse('calls a class (INST/OBJ)')

    # Dict keys and set members are hashed on insertion, and hashing a tuple of tuples visits every leaf: memo
    # references can make a few hundred bytes into 2^100 leaves. Keys are plain values or flat tuples of them.
    def _check_keys(self, keys):
        if not all(_is_plain_key(k) for k in keys):
            self._refuse('uses a nested value as a dict key or set member (hashing it could take unbounded time)')

    def _load_setitem(self):
        self._check_keys([self.stack[-2]])
        pickle._Unpickler.load_setitem(self)

    def _load_setitems(self):
        items = self.pop_mark()
        self._check_keys(items[0::2])
        target = self.stack[-1]
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _load_dict(self):
        items = self.pop_mark()
        self._check_keys(items[0::2])
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def _load_additems(self):
        items = self.pop_mark()
        self._check_keys(items)
        target = self.stack[-1]
        for item in items:
            target.add(item)

    def _load_frozenset(self):
        items = self.pop_mark()
        self._check_keys(items)
        self.append(frozenset(items))

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.FROZENSET[0]] = _load_frozenset
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.INST[0]] = _load_inst_or_obj
    dispatch[pickle.OBJ[0]] = _load_inst_or_obj


def _describe_object(obj):
    if isinstance(obj, type):
        return f'the class {obj.__name__}'
    if callable(obj) and hasattr(obj, '__name__'):
        return f'the function {obj.__name__}'
    return f'a {type(obj).__name__}'
