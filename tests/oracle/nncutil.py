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
    """Writes float32 tensors as safetensors, streaming each array to the file
    (VGG's 550 MB would otherwise be copied three times in memory)."""
    header, arrays, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + arr.nbytes]}
        arrays.append(arr)
        off += arr.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for arr in arrays:
            arr.tofile(f)


def rel_err(got, ref):
    """max |got - ref| / max |ref|: the suite's tolerance measure."""
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))


def torch_state_to_safetensors(module, path):
    """Saves a torch module's state_dict as safetensors (float32), leaving out
    batchnorm's num_batches_tracked, which nnc ignores."""
    st_write(path, {k: v.detach().float().numpy() for k, v in module.state_dict().items()
                    if not k.endswith("num_batches_tracked")})


def torch_param_count(module):
    """Learnable parameters, as PyTorch counts them (buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def torch_macs(module, *inputs):
    """Multiply-accumulates of one forward pass per sample, counted with hooks on
    every Conv2d, ConvTranspose2d and Linear: out_elems * in_ch/groups * kh * kw
    for convolutions, in * out for linear layers (per sample), in*out_ch/groups*kh*kw
    per input element for transposed convolutions. This is what `nnc --stats`
    reports as macs."""
    import torch
    import torch.nn as nn
    total = [0]

    def conv(m, i, o):
        kh, kw = m.kernel_size
        total[0] += o[0].numel() * (m.in_channels // m.groups) * kh * kw

    def convt(m, i, o):
        kh, kw = m.kernel_size
        total[0] += i[0][0].numel() * (m.out_channels // m.groups) * kh * kw

    def lin(m, i, o):
        total[0] += m.in_features * m.out_features

    hooks = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.ConvTranspose2d):
            hooks.append(m.register_forward_hook(convt))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin))
    with torch.no_grad():
        module(*[x[:1] for x in inputs])
    for h in hooks:
        h.remove()
    return total[0]


def nnc_stats(model, *args):
    """`nnc --stats MODEL` as a dict of its `key: value` lines (integers)."""
    out = nnc("--stats", model, *args).stdout
    stats = {}
    for line in out.splitlines():
        if ":" in line and not line.startswith(" "):
            k, v = line.split(":", 1)
            v = v.strip()
            if v.lstrip("-").isdigit():
                stats[k.strip()] = int(v)
    return stats


def check_parity(test, model_path, module, inputs, workdir, outputs=("logits",), extra_args=(), tol=1e-4):
    """The zoo's parity check: module (a torch nn.Module in eval mode) and
    `nnc run model_path` get the same weights (module's state_dict, saved as
    safetensors and loaded by name) and the same inputs (a dict name -> float32
    array with the batch first); every output in `outputs` (module returns a
    tensor, or a tuple in the same order) must be within tol x max|reference|.
    Also checks the learnable parameter count and the MACs against
    `nnc --stats`, and that the model run at -O0 (no optimization pass) agrees
    with the -O2 run and with PyTorch. Returns the relative errors (-O2) by
    output name."""
    import torch
    os.makedirs(workdir, exist_ok=True)
    w = os.path.join(workdir, "weights.safetensors")
    torch_state_to_safetensors(module, w)
    args = ["run", model_path, *extra_args, "--weights", w]
    for name, arr in inputs.items():
        p = os.path.join(workdir, f"in_{name}.npy")
        np.save(p, np.ascontiguousarray(arr, dtype=np.float32))
        args += ["--input", f"{name}={p}"]
    nnc(*args, *[a for name in outputs for a in ("--output", f"{name}={os.path.join(workdir, f'out_{name}.npy')}")])
    # The same model with no pass at all: the optimizations must not change
    # what it computes (issue 4: -O0 and -O2 agree within tol x max|reference|).
    nnc(*args, "-O0", *[a for name in outputs for a in ("--output", f"{name}={os.path.join(workdir, f'out0_{name}.npy')}")])
    with torch.no_grad():
        ref = module(*[torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in inputs.values()])
    if not isinstance(ref, (tuple, list)):
        ref = (ref,)
    errs = {}
    for name, r in zip(outputs, ref):
        got = np.load(os.path.join(workdir, f"out_{name}.npy"))
        r = r.numpy()
        test.assertEqual(got.shape, r.shape, f"output {name}")
        errs[name] = rel_err(got, r)
        test.assertLessEqual(errs[name], tol, f"output {name} of {model_path}")
        got0 = np.load(os.path.join(workdir, f"out0_{name}.npy"))
        test.assertLessEqual(rel_err(got0, r), tol, f"output {name} of {model_path} at -O0")
        test.assertLessEqual(float(np.max(np.abs(got0 - got))) / max(float(np.max(np.abs(r))), 1e-30), tol,
                             f"output {name} of {model_path}: -O0 and -O2 differ")
    stats = nnc_stats(model_path, *extra_args)
    test.assertEqual(stats["params"], torch_param_count(module), f"params of {model_path}")
    test.assertEqual(stats["macs"], torch_macs(module, *[torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
                                                         for a in inputs.values()]), f"macs of {model_path}")
    return errs
