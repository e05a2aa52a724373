#!/usr/bin/python3
"""make_seeds.py: writes the binary seed corpora of tests/fuzz/corpus/.

Small valid files, in the formats nnc reads, written here byte by byte (the
standard library only, so the seeds do not depend on numpy's or torch's
version): they are committed, and this script says how they were made. Run
it from anywhere; it rewrites corpus/{safetensors,npy,idx,checkpoint}/.

    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import gzip
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def floats(n, start=0.0):
    return struct.pack('<%df' % n, *[start + 0.25 * i for i in range(n)])


def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 & -(crc & 1))
    return crc ^ 0xffffffff


def signed(blob):
    """A file of safetensors() whose metadata has "nnc_checksum": "crc32c:00000000",
    with the digits filled in as runtime/checkpoint.c does: the CRC32C of every
    byte of the file but the 8 digits."""
    at = blob.index(b'crc32c:00000000') + len('crc32c:')
    return blob[:at] + b'%08x' % crc32c(blob[:at] + blob[at + 8:]) + blob[at + 8:]


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def safetensors(tensors, metadata=None, dtype='F32', pad_header=True):
    """tensors: list of (name, shape); data are 0, 0.25, 0.5 ..."""
    header, data = {}, b''
    if metadata is not None:
        header['__metadata__'] = metadata
    size = {'F32': 4, 'F16': 2, 'I64': 8, 'U8': 1}[dtype]
    for name, shape in tensors:
        n = numel(shape)
        blob = floats(n) if dtype == 'F32' else bytes((i * 7) & 255 for i in range(n * size))
        header[name] = {'dtype': dtype, 'shape': list(shape), 'data_offsets': [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header, separators=(',', ':')).encode()
    if pad_header:
        text += b' ' * (-len(text) % 8)  # as the reference writer aligns
    return struct.pack('<Q', len(text)) + text + data


def npy(shape, descr='<f4', version=1, fortran=False, payload=None):
    shape_text = '(%s)' % (', '.join(str(d) for d in shape) + (',' if len(shape) == 1 else ''))
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape_text)
    prefix = 10 if version == 1 else 12
    hlen = len(d) + 1
    hlen += -(prefix + hlen) % 64
    head = d.encode() + b' ' * (hlen - len(d) - 1) + b'\n'
    size = {'<f4': 4, '<f8': 8, '|u1': 1, '<i8': 8, '<i4': 4, '<f2': 2, '>f4': 4}[descr]
    if payload is None:
        payload = bytes((i * 37 + 11) % 10 for i in range(numel(shape) * size)) if descr in ('|u1',) else \
            floats(numel(shape)) if descr == '<f4' else bytes(numel(shape) * size)
    ln = struct.pack('<H', hlen) if version == 1 else struct.pack('<I', hlen)
    return b'\x93NUMPY' + bytes([version, 0]) + ln + head + payload


def labels_npy(n, descr='<i8'):
    fmt = {'<i8': '<q', '<i4': '<i', '|u1': '<B'}[descr]
    return npy((n,), descr, payload=b''.join(struct.pack(fmt, i % 3) for i in range(n)))


def idx(dims, data=None):
    n = numel(dims)
    if data is None:
        data = bytes((i * 29) & 255 for i in range(n))
    return bytes([0, 0, 8, len(dims)]) + b''.join(struct.pack('>I', d) for d in dims) + data


def write(kind, name, blob):
    d = os.path.join(HERE, 'corpus', kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(blob)


def gz(blob):
    return gzip.compress(blob, compresslevel=9, mtime=0)  # mtime 0: the same bytes on every run


def main():
    for kind in ('safetensors', 'npy', 'idx', 'checkpoint'):
        shutil.rmtree(os.path.join(HERE, 'corpus', kind), ignore_errors=True)

    # safetensors: what nnc init writes (conv + linear), scalars, empty tensors, other dtypes, unicode names
    lenet = [('conv1.weight', (2, 1, 3, 3)), ('conv1.bias', (2,)), ('fc.weight', (3, 8)), ('fc.bias', (3,))]
    write('safetensors', 'lenet_like.safetensors', safetensors(lenet, {'format': 'pt'}))
    write('safetensors', 'scalar_and_empty.safetensors', safetensors([('s', ()), ('empty', (0, 4)), ('v', (5,))]))
    write('safetensors', 'rank8.safetensors', safetensors([('deep', (1, 2, 1, 2, 1, 1, 2, 1))]))
    write('safetensors', 'no_tensors.safetensors', safetensors([], {'format': 'pt', 'note': 'caf\\u00e9'}))
    write('safetensors', 'f16.safetensors', safetensors([('h', (2, 2))], dtype='F16'))
    write('safetensors', 'unpadded.safetensors', safetensors([('a.b/c', (3,)), ('\u00e9t\u00e9', (1, 1))], pad_header=False))

    # .npy: the tools' float32 reader, and the npy:DIR data sets (images then labels, concatenated)
    write('npy', 'f4_2d.npy', npy((2, 3)))
    write('npy', 'f4_scalar.npy', npy(()))
    write('npy', 'f4_4d_v2.npy', npy((1, 2, 2, 2), version=2))
    write('npy', 'f4_empty.npy', npy((0, 3)))
    write('npy', 'f8_1d.npy', npy((4,), '<f8'))
    write('npy', 'set_u1_i8.npy', npy((3, 1, 2, 2), '|u1') + labels_npy(3))
    write('npy', 'set_f4_3d_i4.npy', npy((2, 3, 2)) + labels_npy(2, '<i4'))
    write('npy', 'set_f8_u1.npy', npy((2, 1, 2, 2), '<f8') + labels_npy(2, '|u1'))

    # IDX: MNIST-like images and labels, plain and gzipped
    images = idx((3, 4, 4))
    labels = idx((3,), bytes([1, 7, 9]))
    write('idx', 'images.idx3', images)
    write('idx', 'labels.idx1', labels)
    write('idx', 'images.idx3.gz', gz(images))
    write('idx', 'labels.idx1.gz', gz(labels))
    write('idx', 'rank4.idx', idx((2, 1, 2, 3)))
    write('idx', 'empty.idx', idx((0, 28, 28), b''))

    # checkpoints: the safetensors files `nnc train --checkpoint` writes: the training
    # module's tensors and the metadata that --resume reads (see tools/train.c)
    meta = {'format': 'pt', 'nnc_network': 'lenet5', 'nnc_epoch': '2', 'nnc_step': '188', 'nnc_seed': '1',
            'nnc_fingerprint': '0123456789abcdef', 'nnc_setting.model': '/work/models/lenet5.net',
            'nnc_setting.lr': '0.050000000000000003', 'nnc_setting.batch': '64', 'nnc_setting.optimizer': 'sgd'}
    table = lenet + [('conv1.weight.momentum', (2, 1, 3, 3)), ('bn.running_mean', (2,)), ('bn.num_batches_tracked', ())]
    write('checkpoint', 'epoch2_unsigned.ckpt', safetensors(table, meta))
    write('checkpoint', 'epoch2.ckpt', signed(safetensors(table, dict(meta, nnc_checksum='crc32c:00000000'))))
    write('checkpoint', 'signed_small.ckpt', signed(safetensors([('w', (2,)), ('s', ())], {
        'nnc_epoch': '1', 'nnc_step': '3', 'nnc_checksum': 'crc32c:00000000'})))
    write('checkpoint', 'epoch0_minimal.ckpt', safetensors([('w', (1,))], {'nnc_epoch': '0', 'nnc_step': '0', 'nnc_fingerprint': 'x'}))
    write('checkpoint', 'escapes.ckpt', safetensors([('w', (2,))], {'nnc_epoch': '1', 'nnc_step': '10', 'nnc_network': 'a\\"b\\u0041\\n'}))


if __name__ == '__main__':
    main()
