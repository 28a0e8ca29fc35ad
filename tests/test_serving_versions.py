"""TF Serving version folders: numbered, never overwritten, never left half written."""

import pytest

from esci_tf.serving import versions


def _write(directory):
    import tensorflow as tf

    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(f"{directory}/saved_model.pb", "w") as stream:
        stream.write("x")


def test_versions_count_up_from_one_and_ignore_other_folders(tmp_path):
    base = tmp_path / "export"
    assert versions.next_version(str(base)) == 1  # base need not exist
    assert versions.write_version(str(base), _write) == str(base / "1")
    (base / "notes").mkdir()
    (base / ".tmp-7-dead").mkdir()  # what a crashed export leaves: TF Serving ignores it
    assert versions.write_version(str(base), _write, version=5) == str(base / "5")
    assert versions.versions(str(base)) == [1, 5]
    assert versions.write_version(str(base), _write) == str(base / "6")
    assert (base / "6" / "saved_model.pb").read_text() == "x"


def test_an_existing_version_is_refused(tmp_path):
    versions.write_version(str(tmp_path), _write, version=3)
    with pytest.raises(FileExistsError, match=r"3 exists.*next free: 4"):
        versions.write_version(str(tmp_path), _write, version=3)
    with pytest.raises(ValueError, match="non-negative integer"):
        versions.version_dir(str(tmp_path), -1)


def test_a_failed_write_leaves_no_version_and_no_temporary_folder(tmp_path):
    def crash(directory):
        _write(directory)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        versions.write_version(str(tmp_path), crash)
    assert list(tmp_path.iterdir()) == []
    assert versions.next_version(str(tmp_path)) == 1
