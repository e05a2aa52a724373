"""Helpers shared by the PyTorch oracle tests: run nnc, read and write
safetensors (a 30-line format: an 8-byte little-endian header length, a JSON
header, then raw little-endian data), compare arrays.

Runs under Debian's /usr/bin/python3, which has python3-torch and numpy; the
tests never import anything nnc-specific, so they check nnc from the outside."""
import json
import os
import struct
import subprocess

import numpy as np

NNC = os.environ.get("NNC_EXE", "nnc")
SRC = os.environ.get("NNC_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def nnc(*args, check=True, cwd=None):
    """Runs the nnc binary; returns the CompletedProcess (text mode)."""
    p = subprocess.run([NNC, *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"nnc {' '.join(map(str, args))} exited {p.returncode}:\n{p.stderr}")
    return p


def st_read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[base + a:base + b], dtype="<f4").reshape(info["shape"]).copy()
    return out


def st_write(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + arr.nbytes]}
        blobs.append(arr.tobytes())
        off += arr.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def rel_err(got, ref):
    """max |got - ref| / max |ref|: the suite's tolerance measure."""
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
