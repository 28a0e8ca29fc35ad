"""esci_tf.files: atomic writes keep the old content on an error, leave no temporary; stale
temporaries are removed; fingerprints follow content."""

import os

import pytest

from esci_tf import files


def test_an_error_while_writing_keeps_the_old_file_and_no_temporary(tmp_path):
    path = str(tmp_path / "metrics.json")
    files.write_json(path, {"steps": 1})
    with pytest.raises(RuntimeError):
        with files.atomic_path(path) as temporary:
            with open(temporary, "w") as stream:
                stream.write('{"steps": ')
            raise RuntimeError("killed half-way")
    assert files.read_json(path) == {"steps": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_a_directory_is_replaced_whole(tmp_path):
    path = str(tmp_path / "export")
    for version in ("1", "2"):
        with files.atomic_path(path) as temporary:
            os.makedirs(temporary)
            open(os.path.join(temporary, f"v{version}"), "w").close()
    assert os.listdir(path) == ["v2"]


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    (tmp_path / (files.TEMP_PREFIX + "best_model.keras")).write_bytes(b"half")
    (tmp_path / (files.TEMP_PREFIX + "export")).mkdir()
    (tmp_path / "best_model.keras").write_bytes(b"whole")
    removed = files.remove_temporaries(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == [".tmp.best_model.keras", ".tmp.export"]
    assert os.listdir(tmp_path) == ["best_model.keras"]


def test_fingerprints_follow_content_not_names(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    a.write_bytes(b"300 rows")
    b.write_bytes(b"300 rows")
    assert files.fingerprint(str(a)) == files.fingerprint(str(b))
    b.write_bytes(b"150 rows")
    assert files.fingerprint(str(a))["sha256"] != files.fingerprint(str(b))["sha256"]
    assert files.pattern_fingerprint(str(tmp_path / "*.parquet"))["files"] == 2
