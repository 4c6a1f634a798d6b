"""Downloads by URL with sha256 checks (file:// URLs stand in for http)."""

import hashlib

import pytest

from seqnn import SeqnnError
from seqnn.data.fetch import download, is_url


def test_download_checks_sha256(tmp_path):
    src = tmp_path / "src.bw"
    src.write_bytes(b"bigwig bytes" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "dl" / "src.bw"
    assert download(src.as_uri(), str(out), digest) == digest
    assert out.read_bytes() == src.read_bytes()
    bad = tmp_path / "dl" / "bad.bw"
    with pytest.raises(SeqnnError, match=f"sha256 is {digest}, expected 0+; the file changed"):
        download(src.as_uri(), str(bad), "0" * 64)
    assert not bad.exists() and sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["src.bw"]


def test_download_missing_url(tmp_path):
    with pytest.raises(SeqnnError, match="download failed"):
        download((tmp_path / "nope").as_uri(), str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_is_url():
    assert is_url("https://x.org/a.bw") and is_url("file:///a.bw") and not is_url("data/a.bw")
