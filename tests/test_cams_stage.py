"""Stage cams from trained weights, as `seam cams` and the notebooks call it."""

import numpy as np
import pytest

from seamlib.cli import main
from seamlib.config import load_config
from seamlib.data.voc import SEG_LISTS, write_list
from seamlib.formats import iter_cams
from seamlib.models import build_model
from seamlib.models.weights import save_released
from seamlib.stages.cams import cams_stage


@pytest.fixture
def trained(voc_root_difficult, tmp_path):
    """A smoke config on the fixture dataset (short lists: inference runs 8 passes an image)
    and random-init weights saved as its trained checkpoint."""
    root = voc_root_difficult
    write_list(root / SEG_LISTS / "pair.txt", ["2007_000001", "2007_000003"])
    write_list(root / SEG_LISTS / "one.txt", ["2007_000003"])
    cfg = load_config("smoke", {"train_cam": {"out_dir": str(tmp_path / "run")},
                                "data": {"cam_list": "pair"}}, data_root=root)
    save_released(build_model(cfg.model), tmp_path / "run" / "model.pth")
    return cfg


def test_cams_stage_writes_every_image_with_its_xml_classes(trained, tmp_path):
    out = cams_stage(trained, progress=False)
    assert out == tmp_path / "run" / "cams_pair"  # default weights, list and folder
    cams = {iid: (c, k) for iid, c, k in iter_cams(out, ["2007_000001", "2007_000003"])}
    assert sorted(cams["2007_000001"][1]) == [12, 15]  # the difficult dog (XML) is kept
    assert cams["2007_000001"][0].shape == (2, 30, 40)


def test_seam_cams_command_raw_cam_differs_from_pcm(trained, tmp_path, capsys):
    out = tmp_path / "cli_cams"
    main(["cams", "--profile", "smoke", "--data-root", trained.data.root,
          "--weights", str(tmp_path / "run" / "model.pth"), "--list", "one", "--out", str(out),
          "--raw-cam", "--device", "cpu"])
    assert str(out) in capsys.readouterr().out
    assert [p.name for p in out.glob("*.npz")] == ["2007_000003.npz"]
    pcm = cams_stage(trained, list_name="one", progress=False)
    assert pcm.name == "cams_one"
    a, b = (np.load(d / "2007_000003.npz")["cams"] for d in (pcm, out))
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_cams_stage_names_missing_weights(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth: no trained weights"):
        cams_stage(trained, tmp_path / "nothing.pth", progress=False)
