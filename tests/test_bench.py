"""Benchmark bookkeeping: output differences, speedups and the README table."""

import pytest
import torch

from benchmarks.bench import compare_paired, difference, make_data, table, train_run
from seamlib.device import cpu_model, cpu_ticks, hardware, steal_percent


def test_difference_of_losses_and_cams(tmp_path):
    assert difference({"loss": [1.0, 2.0]}, {"loss": [1.0, 2.5]}) == 0.5
    torch.save([torch.zeros(2, 3)], tmp_path / "a.pt")
    torch.save([torch.full((2, 3), 1e-6)], tmp_path / "b.pt")
    got = difference({"cams": tmp_path / "a.pt"}, {"cams": tmp_path / "b.pt"})
    assert abs(got - 1e-6) < 1e-9


def test_table_has_a_row_per_variant_with_speedup():
    result = {"settings": {"root": "x", "width": 1.0, "images": 2},
              "variants": {v: {"images_per_s": ips, "median_seconds": s, "speedup": sp,
                               "peak_rss_gib": 1.0, "max_abs_diff": d}
                           for v, ips, s, sp, d in [("reference", 1.0, 2.0, 1.0, 0.0),
                                                    ("batched", 2.0, 1.0, 2.0, 1e-6)]}}
    text = table({"infer_full": result}, "python -m benchmarks.bench", "shared machine")
    rows = [line for line in text.splitlines() if line.startswith("| infer_full")]
    assert len(rows) == 2 and "| batched |" in rows[1] and "2.0x" in rows[1]
    assert "root" not in text and "shared machine" in text and "Hardware" in text


def test_hardware_names_the_cpu_model(tmp_path):
    """Two x86_64 CPUs train to different weights, so the model and AVX-512 are recorded."""
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu avx512f\n"
                    "processor\t: 1\nmodel name\t: Example CPU 9000\n")
    assert cpu_model(info) == "Example CPU 9000, AVX-512"
    info.write_text("model name\t: Other CPU\nflags\t\t: fpu avx2\n")
    assert cpu_model(info) == "Other CPU"
    assert cpu_model(tmp_path / "absent")  # not Linux: the platform's name, never empty
    assert cpu_model() in hardware()


def test_cpu_steal_from_proc_stat(tmp_path):
    """Steal is the 8th field of /proc/stat's cpu line; its share is of every field's ticks."""
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 20 870 0 0 0 10 5 0\ncpu0 50 0 10 435 0 0 0 5 0 0\n")
    assert cpu_ticks(stat) == (10, 1000)  # guest time is inside user time: not added again
    assert steal_percent((10, 1000), (40, 1200)) == 15.0
    assert steal_percent((10, 1000), (10, 1000)) is None  # no time passed
    assert steal_percent(None, (10, 1000)) is None
    assert cpu_ticks(tmp_path / "absent") is None  # not Linux
    stat.write_text("cpu  100 0 20\n")  # a kernel without steal
    assert cpu_ticks(stat) is None


def test_bf16_variant_trains_under_autocast_and_stays_near_fp32(tmp_path):
    """bf16 changes the numbers (so it is only a benchmark variant), but not by much."""
    root = str(make_data(tmp_path / "bench", 4))
    kw = dict(root=root, width=0.125, crop=32, batch=2, method="seam", steps=1)
    fp32, bf16 = train_run(variant="cached", **kw), train_run(variant="cached_bf16", **kw)
    assert fp32["loss"] != bf16["loss"]  # autocast took effect
    assert difference(fp32, bf16) < 0.2 * max(fp32["loss"])  # measured: 7 %


def test_training_runs_more_steps_than_one_epoch_has_batches(tmp_path):
    root = str(make_data(tmp_path / "bench", 4))  # 2 batches of 2: the 4 steps need 2 epochs
    run = train_run(root=root, width=0.125, crop=32, batch=2, method="baseline", steps=3,
                    variant="cached")
    assert len(run["seconds"]) == len(run["minor_faults"]) == 3 and len(run["loss"]) == 4


@pytest.mark.slow
def test_paired_runs_go_at_once_on_swapped_cores_with_a_speedup_per_round(tmp_path):
    root = str(make_data(tmp_path / "bench", 4))
    kw = dict(root=root, width=0.125, crop=32, batch=2, method="baseline", steps=1)
    out = compare_paired("train", kw, ["cached", "cached_keep"], 1, 2, tmp_path)
    assert out["repeats"] == 2 and len(out["round_speedups"]) == 2
    assert list(out["variants"]) == ["cached", "cached_keep"]
    assert out["variants"]["cached_keep"]["max_abs_diff"] == 0  # same bits
    text = table({"train_proxy_baseline": out}, "python -m benchmarks.bench --paired", "")
    assert "(rounds " in text.splitlines()[-1] and "(rounds " not in text.splitlines()[-2]
    with pytest.raises(ValueError, match="two variants"):
        compare_paired("train", kw, ["reference", "cached", "cached_keep"], 1, 2, tmp_path)
