"""Reads what a 2-process example run logged with every tracker, with the real readers: TensorBoard's
EventAccumulator (scalars at their steps, the hparams plugin data), json and csv. Exits non-zero on a mismatch.
Usage: trackers_interop.py RUN_DIR EPOCHS"""
import csv
import glob
import json
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

run_dir, epochs = sys.argv[1], int(sys.argv[2])

events = glob.glob(f"{run_dir}/events.out.tfevents.*")
assert len(events) == 1, f"expected one event file (the main process's), found {events}"
acc = EventAccumulator(events[0])
acc.Reload()
for tag in ("train_loss", "accuracy", "lr", "epoch"):
    scalars = acc.Scalars(tag)
    assert [s.step for s in scalars] == list(range(epochs)), (tag, [s.step for s in scalars])
assert [s.value for s in acc.Scalars("epoch")] == [float(e) for e in range(epochs)]
assert all(0.0 < s.value <= 1.0 for s in acc.Scalars("accuracy")), acc.Scalars("accuracy")

hparams = acc.PluginTagToContent("hparams")
start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"])
values = {k: (v.number_value if v.HasField("number_value") else v.string_value)
          for k, v in start.session_start_info.hparams.items()}
assert values["num_processes"] == 2 and values["mixed_precision"] == "no" and values["batch_size"] == 64, values
experiment = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/experiment"])
assert {h.name for h in experiment.experiment.hparam_infos} == set(values), experiment
end = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_end_info"])
assert end.session_end_info.status == 1, end

with open(f"{run_dir}/metrics.jsonl") as f:
    lines = [json.loads(line) for line in f]
assert "_config" in lines[0] and lines[0]["_config"]["num_processes"] == 2, lines[0]
assert [l["_step"] for l in lines[1:]] == list(range(epochs)), "one line per epoch, written once"
tb_loss = [s.value for s in acc.Scalars("train_loss")]
assert all(math.isclose(l["train_loss"], t, rel_tol=1e-6) for l, t in zip(lines[1:], tb_loss)), (lines, tb_loss)

with open(f"{run_dir}/metrics.csv") as f:
    rows = list(csv.DictReader(f))
assert len(rows) == 4 * epochs, rows
assert sorted({int(r["step"]) for r in rows}) == list(range(epochs))
loss_rows = [float(r["value"]) for r in rows if r["name"] == "train_loss"]
assert all(math.isclose(c, l["train_loss"], rel_tol=1e-12) for c, l in zip(loss_rows, lines[1:]))
with open(f"{run_dir}/hparams.csv") as f:
    assert {r["name"]: r["value"] for r in csv.DictReader(f)}["mixed_precision"] == "no"
print(f"trackers interop: TensorBoard, JSONL and CSV agree over {epochs} epochs")
