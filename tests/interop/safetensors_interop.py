"""Interop with Python's safetensors. `write PATH` writes the reference tensors; `check PATH` loads a file
(written by accelerate-cpp) and compares it with them. The C++ side builds the same tensors
(tests/interop/safetensors_interop_test.cpp)."""
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

DTYPES = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16,
          "i64": torch.int64, "i32": torch.int32, "i16": torch.int16, "i8": torch.int8, "u8": torch.uint8,
          "bool": torch.bool}


def reference():
    tensors = {}
    for name, dtype in DTYPES.items():
        values = torch.arange(-6, 6, dtype=torch.float64).reshape(3, 4) * 1.5
        if dtype == torch.bool:
            tensors[name] = values > 0
        elif dtype == torch.uint8:
            tensors[name] = values.abs().to(dtype)
        else:
            tensors[name] = values.to(dtype)
    tensors["scalar"] = torch.tensor(3.25)
    tensors["empty"] = torch.zeros(0, 5)
    tensors["model.layer.weight"] = torch.linspace(-1, 1, 60).reshape(6, 10)
    return tensors


def check_sharded(sharded_dir, single_file):
    """The shards listed by the index hold exactly the tensors of the single-file save."""
    import json, os
    index = json.load(open(os.path.join(sharded_dir, "model.safetensors.index.json")))
    merged = {}
    for shard in sorted(set(index["weight_map"].values())):
        merged.update(load_file(os.path.join(sharded_dir, shard)))
    single = load_file(single_file)
    if sorted(merged) != sorted(single) or sorted(index["weight_map"]) != sorted(single):
        print("tensor names differ:", sorted(merged), sorted(single))
        return 1
    for name, tensor in single.items():
        if not torch.equal(merged[name], tensor):
            print("tensor differs:", name)
            return 1
    total = sum(t.numel() * t.element_size() for t in single.values())
    if index["metadata"]["total_size"] != total:
        print("total_size", index["metadata"]["total_size"], "!=", total)
        return 1
    print(f"python read {len(set(index['weight_map'].values()))} shards via the index: equal to the single file")
    return 0


def check_checkpoint(ckpt_dir, expected_json):
    """Python reads a save_state folder: model and optimizer tensors equal the values the C++ side reported."""
    import json, os
    expected = json.loads(expected_json)
    for file_name, tensors in expected.items():
        loaded = load_file(os.path.join(ckpt_dir, file_name))
        for name, (shape, values) in tensors.items():
            got = loaded[name]
            if list(got.shape) != shape or not torch.equal(got.flatten(), torch.tensor(values, dtype=got.dtype)):
                print("differs:", file_name, name, list(got.shape), shape)
                return 1
    print(f"python read {sum(len(t) for t in expected.values())} tensors of the checkpoint: equal")
    return 0


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "check_checkpoint":
        return check_checkpoint(path, sys.argv[3])
    if mode == "check_sharded":
        return check_sharded(path, sys.argv[3])
    expected = reference()
    if mode == "write":
        save_file(expected, path, metadata={"format": "pt", "written_by": "python"})
        return 0
    loaded = load_file(path)
    if sorted(loaded) != sorted(expected):
        print("keys differ:", sorted(loaded), sorted(expected))
        return 1
    for name, tensor in expected.items():
        got = loaded[name]
        if got.dtype != tensor.dtype or got.shape != tensor.shape or not torch.equal(got, tensor):
            print("tensor differs:", name, got.dtype, got.shape, tensor.dtype, tensor.shape)
            return 1
    with safe_open(path, "pt") as f:
        if f.metadata() != {"format": "pt", "written_by": "accelerate-cpp"}:
            print("metadata differs:", f.metadata())
            return 1
    print(f"python safetensors read {len(loaded)} tensors written by accelerate-cpp: equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
