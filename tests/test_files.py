import pytest

from lessons_lib import files


def test_atomic_write_text_bytes_and_writer(tmp_path):
    files.atomic_write(tmp_path / "a" / "t.txt", "héllo\n")
    assert (tmp_path / "a" / "t.txt").read_bytes() == "héllo\n".encode()
    files.atomic_write(tmp_path / "b.bin", b"\x00\x01")
    files.atomic_write(tmp_path / "c.bin", lambda fh: fh.write(b"xyz"))
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01" and (tmp_path / "c.bin").read_bytes() == b"xyz"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("earlier result")

    def broken(fh):
        fh.write(b"half of it")
        raise KeyboardInterrupt  # as if the run were stopped mid-write

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(target, broken)
    assert target.read_text() == "earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left


def test_atomic_write_refuses_to_overwrite_when_asked(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists and is kept"):
        files.atomic_write(target, "new", overwrite=False)
    assert target.read_text() == "keep me"


def test_write_unique_never_overwrites(tmp_path):
    names = [files.write_unique(tmp_path, "edit", ".png", str(i)).name for i in range(3)]
    assert names == ["edit.png", "edit-2.png", "edit-3.png"]
    assert (tmp_path / "edit.png").read_text() == "0" and (tmp_path / "edit-3.png").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_written_files_follow_the_umask(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        assert (files.atomic_write(tmp_path / "a.txt", "x").stat().st_mode & 0o777) == 0o644
        assert (files.write_unique(tmp_path, "b", ".txt", "x").stat().st_mode & 0o777) == 0o644
        os.umask(0o077)
        assert (files.atomic_write(tmp_path / "c.txt", "x").stat().st_mode & 0o777) == 0o600
        (tmp_path / "a.txt").chmod(0o640)  # a replaced file keeps its own permissions
        assert (files.atomic_write(tmp_path / "a.txt", "y").stat().st_mode & 0o777) == 0o640
    finally:
        os.umask(old)
