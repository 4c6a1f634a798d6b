"""Download inputs given by URL, checked against their sha256 when one is given."""

from __future__ import annotations

import hashlib
import urllib.request

from seqnn import SeqnnError
from seqnn.io import atomic_path

URL_SCHEMES = ("http://", "https://", "ftp://", "file://")


def is_url(path: str) -> bool:
    return str(path).startswith(URL_SCHEMES)


def download(url: str, out: str, sha256: str | None = None) -> str:
    """Fetch `url` to `out` atomically; fail (leaving nothing) on a checksum mismatch."""
    digest = hashlib.sha256()
    with atomic_path(out) as tmp:
        try:
            with urllib.request.urlopen(url) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
        except OSError as e:
            raise SeqnnError(f"{url}: download failed ({e}); check the URL or download it by "
                             "hand and give its path") from e
        if sha256 and digest.hexdigest() != sha256.lower():
            raise SeqnnError(f"{url}: sha256 is {digest.hexdigest()}, expected {sha256}; the file "
                             "changed or the checksum is wrong")
    return digest.hexdigest()

