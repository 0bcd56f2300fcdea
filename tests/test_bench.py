"""Benchmark bookkeeping: output differences, speedups and the README table."""

import torch

from seamlib.bench import difference, table


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
    text = table({"infer_full": result}, "python -m seamlib.bench", "shared machine")
    rows = [line for line in text.splitlines() if line.startswith("| infer_full")]
    assert len(rows) == 2 and "| batched |" in rows[1] and "2.0x" in rows[1]
    assert "root" not in text and "shared machine" in text and "Hardware" in text
