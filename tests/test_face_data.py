"""FER-2013 loaders on fixtures in each real format, and their errors on bad input."""

import numpy as np
import pytest

from dsrter.train.fer_data import PRIVATE_TEST, PUBLIC_TEST, TRAIN, FerDataError, load_fer
from face_fixtures import synthetic_faces, write_csv, write_folder, write_npz


@pytest.mark.parametrize("writer,name", [(write_npz, "fer.npz"), (write_csv, "fer.csv"), (write_folder, "folder")])
def test_every_format_loads_the_same_faces(tmp_path, writer, name):
    data = load_fer(writer(tmp_path / name))
    images, labels, usage = synthetic_faces()
    assert len(data) == len(labels) == 84
    assert data.images.shape == (84, 48, 48) and data.images.dtype == np.uint8
    # Same multiset of (label, usage) whatever the format; same pixels per label for lossless formats.
    assert sorted(zip(data.labels.tolist(), data.usage.tolist())) == sorted(zip(labels.tolist(), usage.tolist()))
    assert (data.usage == TRAIN).sum() == 56 and (data.usage == PUBLIC_TEST).sum() == 14 and (data.usage == PRIVATE_TEST).sum() == 14
    order = np.lexsort((data.images.reshape(84, -1).sum(1), data.labels))
    ref = np.lexsort((images.reshape(84, -1).sum(1), labels))
    assert np.array_equal(data.images[order], images[ref])


def test_npz_without_usage_is_all_evaluation(tmp_path):
    images, labels, _ = synthetic_faces()
    np.savez(tmp_path / "x.npz", images=images, labels=labels)
    data = load_fer(tmp_path / "x.npz")
    assert (data.usage == PRIVATE_TEST).all()


def test_corrupt_csv_row_is_named(tmp_path):
    p = write_csv(tmp_path / "fer.csv")
    lines = p.read_text().splitlines()
    lines[5] = "3,12 13 14,Training"  # too few pixels
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(FerDataError, match=r"line 6: expected 2304 pixels, got 3"):
        load_fer(p)


def test_bad_label_and_usage_are_named(tmp_path):
    p = write_csv(tmp_path / "fer.csv")
    lines = p.read_text().splitlines()
    lines[2] = "9," + lines[2].split(",", 1)[1]
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(FerDataError, match=r"line 3: emotion 9 out of range"):
        load_fer(p)


def test_wrong_image_size_is_named(tmp_path):
    import cv2

    root = write_folder(tmp_path / "folder")
    bad = root / "train" / "happy" / "Training_bad.png"
    cv2.imwrite(str(bad), np.zeros((64, 50), np.uint8))
    with pytest.raises(FerDataError, match=r"Training_bad.png: image is 50x64, expected 48x48"):
        load_fer(root)


def test_unreadable_image_and_missing_source(tmp_path):
    root = write_folder(tmp_path / "folder")
    (root / "train" / "sad" / "Training_broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FerDataError, match="Training_broken.jpg: not a readable image"):
        load_fer(root)
    with pytest.raises(FerDataError, match="not found"):
        load_fer(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(FerDataError, match="not a readable npz"):
        load_fer(tmp_path / "bad.npz")


def test_unknown_label_folder(tmp_path):
    root = write_folder(tmp_path / "folder")
    (root / "train" / "contempt").mkdir()
    with pytest.raises(FerDataError, match="unknown emotion label 'contempt'"):
        load_fer(root)
