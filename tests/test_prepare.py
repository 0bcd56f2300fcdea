"""Stage data: labels come from XML, and disagreements with the masks are reported."""

import shutil
from pathlib import Path

import pytest

import seamlib.data.prepare
from seamlib.config import load_config
from seamlib.data.lists import STAMPS, DataError, labels_cache
from seamlib.data.prepare import CROSSCHECK, prepare_data
from seamlib.data.voc import SEG_CLASS_AUG, cache_dir
from seamlib.errors import InputError


@pytest.fixture
def prepared(voc_root_difficult: Path, monkeypatch):
    """prepare_data on the fixture dataset (the generator is skipped: the data is there)."""
    monkeypatch.setattr(seamlib.data.prepare, "generate", lambda *args: None)

    def run(**data):
        cfg = load_config("smoke", {"data": data}, data_root=voc_root_difficult)
        return prepare_data(cfg)
    return run


def test_prepare_reports_disagreements_and_uses_xml(prepared, voc_root_difficult, capsys):
    voc_root = voc_root_difficult
    prepared()
    out = capsys.readouterr().out
    assert "labels come from xml" in out and "disagree on 1 of 4" in out
    report = (cache_dir(voc_root) / CROSSCHECK).read_text()
    assert "come from xml" in report and "2007_000001: only in mask: -; only in XML: dog" in report
    assert labels_cache(voc_root, "xml").is_file() and labels_cache(voc_root, "mask").is_file()


def test_prepare_with_mask_labels_says_so(prepared, capsys):
    prepared(label_source="mask")
    assert "labels come from mask" in capsys.readouterr().out
    with pytest.raises(ValueError, match="data.label_source"):
        prepared(label_source="png")


def test_prepare_validate_takes_a_user_folder_without_aug_masks(voc_root, monkeypatch, capsys):
    """A folder of one's own: nothing downloaded or generated, no list sizes checked, XML
    labels with no SegmentationClassAug at all; the skipped cross-check is reported."""
    for name in ("prepare_voc", "write_train_aug", "check_real_sizes", "generate"):
        monkeypatch.setattr(seamlib.data.prepare, name, lambda *a, n=name: pytest.fail(f"{n} ran"))
    shutil.rmtree(voc_root / SEG_CLASS_AUG)
    cfg = load_config("voc", {"data": {"prepare": "validate", "train_list": "train"}},
                      data_root=voc_root)
    assert prepare_data(cfg) == voc_root
    out = capsys.readouterr().out
    assert "labels come from xml" in out and "not cross-checked" in out
    assert "SegmentationClassAug/ lacks" in (cache_dir(voc_root) / CROSSCHECK).read_text()
    assert labels_cache(voc_root, "xml").is_file() and not labels_cache(voc_root, "mask").exists()
    with pytest.raises(DataError, match="SegmentationClassAug/: required folder is missing"):
        prepare_data(load_config("voc", {"data": {"prepare": "validate", "label_source": "mask",
                                                  "train_list": "train"}}, data_root=voc_root))


def test_prepare_validate_cross_checks_where_both_sources_exist(voc_root_difficult, capsys):
    cfg = load_config("voc", {"data": {"prepare": "validate"}}, data_root=voc_root_difficult)
    prepare_data(cfg)
    assert "disagree on 1 of 4" in capsys.readouterr().out


def test_prepare_rejects_an_unknown_mode(voc_root):
    cfg = load_config("voc", {"data": {"prepare": "copy"}}, data_root=voc_root)
    with pytest.raises(ValueError, match=r"data.prepare.*download, generate, validate.*'copy'"):
        prepare_data(cfg)


def test_profiles_prepare_their_own_data():
    assert load_config("voc").data.prepare == "download"
    assert load_config("proxy").data.prepare == load_config("smoke").data.prepare == "generate"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("profile", ["smoke", "proxy", "voc"])
def test_a_generating_profile_never_writes_into_a_users_folder(voc_root, profile, capsys,
                                                               monkeypatch):
    """A folder the project did not make is validated as it is, whatever data.prepare says:
    nothing in it changes, byte for byte, and nothing is added; one line says so."""
    monkeypatch.setattr(seamlib.data.prepare, "prepare_voc",
                        lambda *a: pytest.fail("downloaded into a user's folder"))
    write = voc_root / "ImageSets/Segmentation/train_aug.txt"
    write.write_text(write.read_text().replace("2007_000006\n", ""))  # the user's own edit
    before = snapshot(voc_root)
    cfg = load_config(profile, {"data": {"train_list": "train_aug"}}, data_root=voc_root)
    assert prepare_data(cfg) == voc_root
    assert snapshot(voc_root) == before
    out = capsys.readouterr().out
    assert f"{voc_root}: not made by this project" in out and "only validates it" in out


def test_a_generated_folder_keeps_a_list_its_user_edited(tmp_path, capsys):
    """A folder the generator made is finished where incomplete, never rewritten: an edited
    train_aug.txt survives the next prepare."""
    root = tmp_path / "VOC2012"
    cfg = load_config("smoke", data_root=root)
    prepare_data(cfg)
    train_aug = root / "ImageSets/Segmentation/train_aug.txt"
    kept = train_aug.read_text().splitlines()[:-2]
    train_aug.write_text("".join(f"{i}\n" for i in kept))
    (root / "ImageSets/Segmentation/test.txt").unlink()  # an interrupted generation: finished
    before = snapshot(root)
    prepare_data(cfg)
    assert train_aug.read_text().splitlines() == kept
    after = snapshot(root)
    assert "ImageSets/Segmentation/test.txt" in after
    derived = (CROSSCHECK, STAMPS, *(f"cls_labels_{s}{e}" for s in ("xml", "mask")
                                     for e in (".json", ".stat.json")))
    assert {k: v for k, v in after.items() if k not in derived} == {
        k: v for k, v in before.items() if k not in derived} | {
        "ImageSets/Segmentation/test.txt": after["ImageSets/Segmentation/test.txt"]}
    assert "not made by this project" not in capsys.readouterr().out


def test_caches_of_a_users_folder_live_in_the_projects_own(voc_root, data_cache):
    cfg = load_config("voc", {"data": {"prepare": "validate"}}, data_root=voc_root)
    prepare_data(cfg)
    cache = cache_dir(voc_root)
    assert cache.parent == data_cache and (cache / CROSSCHECK).is_file()
    assert labels_cache(voc_root, "xml").parent == cache


def test_downloading_needs_a_root_named_voc2012(tmp_path, monkeypatch):
    """The archives unpack VOC2012/ with SBD/ and downloads/ beside it: another root name
    would put the data where data.root does not point, in a folder the user named."""
    monkeypatch.setattr(seamlib.data.prepare, "prepare_voc",
                        lambda *a: pytest.fail("downloaded beside a root of another name"))
    cfg = load_config("voc", {}, data_root=tmp_path / "mine")
    with pytest.raises(InputError, match=r"mine: downloading makes .*must end in VOC2012"):
        prepare_data(cfg)
    assert not any(tmp_path.iterdir())
