"""bench/loader_bench.cpp in Python: the same samples, crops, normalisation and padding with PyTorch's DataLoader.
    python loader_reference.py <num_workers> [epochs]   -> prints samples_per_s=<x>
"""
import sys
import time
import warnings

import torch
from torch.nn.utils.rnn import pad_sequence

SAMPLES, BATCH, FEATURES = 4096, 32, 64


class Frames(torch.utils.data.Dataset):
    def __len__(self):
        return SAMPLES

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"features": torch.randn(100 + (i * 37) % 301, FEATURES, generator=g)}


def crop_normalise_pad(samples):
    crops = []
    for s in samples:
        x = s["features"]
        n = x.size(0)
        length = torch.randint(n // 2, n + 1, (1,)).item()
        start = torch.randint(0, n - length + 1, (1,)).item()
        crop = x[start:start + length]
        crops.append((crop - crop.mean(0)) / (crop.std(0) + 1e-5))
    lengths = torch.tensor([c.size(0) for c in crops])
    mask = (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).long()
    return {"features": pad_sequence(crops, batch_first=True), "attention_mask": mask}


def main():
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # 4 workers on 2 cores, on purpose
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    loader = torch.utils.data.DataLoader(Frames(), batch_size=BATCH, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, collate_fn=crop_normalise_pad,
                                         generator=torch.Generator().manual_seed(0))

    def run_epoch():
        return sum(batch["features"].size(0) for batch in loader)

    run_epoch()  # warm-up: workers started
    start = time.perf_counter()
    samples = sum(run_epoch() for _ in range(epochs))
    print(f"samples_per_s={samples / (time.perf_counter() - start)}")


if __name__ == "__main__":
    main()
