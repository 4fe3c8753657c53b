"""Image folders, manifests, label maps and unreadable files, on small folders made here."""
import numpy as np
import pytest

from realtime.images import DatasetError, ImageFolder, read_image
from training.data import LabelMap


def make_folder(tmp_path, with_manifest=True, corrupt=True):
    import cv2

    root = tmp_path / "toy"
    rows = ["path,label,signer,source_split"]
    for label in "AB":
        (root / label).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(root / label / f"{label}{i}.png"), np.full((32, 32, 3), 40 * i, np.uint8))
            rows.append(f"{label}/{label}{i}.png,{label},p{i},train")
    if corrupt:
        (root / "A" / "broken.jpg").write_bytes(b"not a jpeg at all")
        rows.append("A/broken.jpg,A,p9,train")
    if with_manifest:
        (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_manifest_and_scan_agree(tmp_path):
    root = make_folder(tmp_path)
    ds = ImageFolder(root)
    assert ds.has_manifest and len(ds) == 7 and ds.labels == ["A", "B"]
    assert {s.signer for s in ds.samples} == {"p0", "p1", "p2", "p9"}
    (root / "manifest.csv").unlink()
    scanned = ImageFolder(root)
    assert not scanned.has_manifest and len(scanned) == 7 and all(s.signer == "" for s in scanned.samples)
    assert len(ImageFolder(root, labels=["B"])) == 3


def test_unreadable_images_give_none_not_an_exception(tmp_path):
    root = make_folder(tmp_path)
    assert read_image(root / "A" / "broken.jpg") is None
    assert read_image(root / "A" / "missing.png") is None
    assert read_image(root / "A" / "A0.png").shape == (32, 32, 3)


def test_content_hash_changes_with_the_data(tmp_path):
    root = make_folder(tmp_path)
    h1 = ImageFolder(root).content_hash()
    assert ImageFolder(root).content_hash() == h1
    text = (root / "manifest.csv").read_text().replace("B/B2.png,B,p2", "B/B2.png,A,p2")
    (root / "manifest.csv").write_text(text)
    assert ImageFolder(root).content_hash() != h1


def test_bad_folders_get_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        ImageFolder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        ImageFolder(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.csv").write_text("file,class\nx.png,A\n")
    with pytest.raises(DatasetError, match="lacks column"):
        ImageFolder(bad)


def test_label_map_marks_unknown_labels():
    lm = LabelMap(["A", "B", "C"])
    assert lm.encode(["C", "A", "Z"]).tolist() == [2, 0, -1]
    with pytest.raises(ValueError):
        LabelMap(["A", "A"])
