"""Writes small torch.save-format zip files for the checkpoint-reader tests, without PyTorch.

Run with any Python 3 (standard library only): `python3 make_synthetic_checkpoints.py`. It imitates what torch.save
emits: a zip `<name>/data.pkl` pickled by a Pickler whose persistent_id maps storages to
('storage', torch.<Type>Storage, key, 'cpu', numel), tensors reduced to torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, requires_grad, OrderedDict()), parameters to torch._utils._rebuild_parameter, raw storage bytes in
`<name>/data/<key>`, plus `byteorder` and `version`. Fake `torch` modules stand in so that pickle names the real globals.
The expected values are asserted in PyTorchCheckpointTests.cs.
"""
import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils
torch._utils = torch_utils


def _storage_class(name, fmt, itemsize):
    cls = type(name, (), {"fmt": fmt, "itemsize": itemsize, "__module__": "torch"})
    setattr(torch, name, cls)
    return cls


FloatStorage = _storage_class("FloatStorage", "<f", 4)
DoubleStorage = _storage_class("DoubleStorage", "<d", 8)
HalfStorage = _storage_class("HalfStorage", "<e", 2)
BFloat16Storage = _storage_class("BFloat16Storage", None, 2)
LongStorage = _storage_class("LongStorage", "<q", 8)
IntStorage = _storage_class("IntStorage", "<i", 4)
ByteStorage = _storage_class("ByteStorage", "<B", 1)
BoolStorage = _storage_class("BoolStorage", "<?", 1)


def _rebuild_tensor_v2(*args):
    raise AssertionError("only pickled, never called")


def _rebuild_parameter(*args):
    raise AssertionError("only pickled, never called")


for fn in (_rebuild_tensor_v2, _rebuild_parameter):
    fn.__module__ = "torch._utils"
    setattr(torch_utils, fn.__name__, fn)


class Storage:
    def __init__(self, key, kind, values):
        self.key, self.kind, self.values = key, kind, values

    def raw(self):
        if self.kind is BFloat16Storage:  # bf16 = the upper half of the float32 bits (exact for these values)
            return b"".join(struct.pack("<f", v)[2:] for v in self.values)
        return b"".join(struct.pack(self.kind.fmt, v) for v in self.values)


class Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.storage, self.offset, self.size, self.stride, self.parameter = storage, offset, size, stride, parameter

    def __reduce_ex__(self, protocol):
        plain = (_rebuild_tensor_v2, (self.storage, self.offset, tuple(self.size), tuple(self.stride), False, collections.OrderedDict()))
        if not self.parameter:
            return plain
        return (_rebuild_parameter, (Tensor(self.storage, self.offset, self.size, self.stride), True, collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", len(obj.values))
        return None


def write_checkpoint(path, obj, protocol=2):
    storages = {}

    def collect(value):
        if isinstance(value, Tensor):
            storages[value.storage.key] = value.storage
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)

    collect(obj)
    buffer = io.BytesIO()
    TorchPickler(buffer, protocol=protocol).dump(obj)
    name = os.path.splitext(os.path.basename(path))[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{name}/data.pkl", buffer.getvalue())
        archive.writestr(f"{name}/byteorder", "little")
        for key, storage in storages.items():
            archive.writestr(f"{name}/data/{key}", storage.raw())
        archive.writestr(f"{name}/version", "3\n")


def mixed_contents():
    shared = Storage("0", FloatStorage, [float(i) for i in range(12)])
    state = collections.OrderedDict()
    state["transposed"] = Tensor(shared, 0, [4, 3], [1, 4])          # = arange(12).view(3,4).t()
    state["offset_strided"] = Tensor(shared, 2, [2, 2], [6, 2])      # elements 2,4 / 8,10
    state["full"] = Tensor(shared, 0, [3, 4], [4, 1])                # = arange(12).view(3,4)
    state["scalar"] = Tensor(Storage("1", DoubleStorage, [2.5]), 0, [], [])
    state["half"] = Tensor(Storage("2", HalfStorage, [0.5, -1.25, 3.0]), 0, [3], [1])
    state["bf16"] = Tensor(Storage("3", BFloat16Storage, [1.0, -2.0, 0.15625, 96.0]), 0, [2, 2], [2, 1])
    state["int64"] = Tensor(Storage("4", LongStorage, [-3, 2 ** 40, 7]), 0, [3], [1])
    state["int32"] = Tensor(Storage("5", IntStorage, [-1, 0, 123456]), 0, [3], [1])
    state["uint8"] = Tensor(Storage("6", ByteStorage, [0, 128, 255]), 0, [3], [1])
    state["bool"] = Tensor(Storage("7", BoolStorage, [True, False, True]), 0, [3], [1])
    state["param"] = Tensor(Storage("8", FloatStorage, [0.25, -0.75]), 0, [2], [1], parameter=True)
    state._metadata = collections.OrderedDict([("", {"version": 1}), ("blocks.0", {"version": 2})])
    return {
        "state": state,
        "int": 1234,
        "negative": -70000,
        "big": 2 ** 70,
        "float": 0.1,
        "text": "héllo",
        "none": None,
        "flag": True,
        "list": [1, 2.5, "x", (1, 2)],
        "tuple": (0.9, 0.95),
        "nested": {3: "three", "shared_again": state["full"]},
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    write_checkpoint(os.path.join(here, "mixed_protocol2.pt"), mixed_contents(), protocol=2)
    write_checkpoint(os.path.join(here, "mixed_protocol4.pt"), mixed_contents(), protocol=4)
    weights = Storage("0", FloatStorage, [1.0, 2.0, 3.0, 4.0])
    bias = Storage("1", FloatStorage, [0.5])
    prefixed = collections.OrderedDict()
    prefixed["module._orig_mod.layer.weight"] = Tensor(weights, 0, [2, 2], [2, 1])
    prefixed["module.layer.bias"] = Tensor(bias, 0, [1], [1])
    write_checkpoint(os.path.join(here, "prefixed_state_dict.pt"), prefixed)
    write_checkpoint(os.path.join(here, "model_only.pt"), {"model": collections.OrderedDict(
        [("layer.weight", Tensor(weights, 0, [2, 2], [2, 1]))]), "step": 10})
    import argparse
    write_checkpoint(os.path.join(here, "unknown_global.pt"), {
        "ema": collections.OrderedDict([("layer.bias", Tensor(bias, 0, [1], [1]))]),
        "args": argparse.Namespace(lr=0.1)})


if __name__ == "__main__":
    main()
