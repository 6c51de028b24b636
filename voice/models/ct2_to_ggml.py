#!/usr/bin/env python3
"""Converts a CTranslate2 (faster-whisper) Whisper model into the GGML file
whisper.cpp (and so whisper-rs) loads.

    ct2_to_ggml.py MODEL_DIR MEL_FILTERS_NPZ OUT.bin [f16|q8_0]

The last argument is the type of the weight matrices: f16 (the default,
as OpenAI's and whisper.cpp's published files) or q8_0 (8-bit blocks, as
whisper.cpp's `quantize` tool writes them: a quarter of f32's size and
faster on CPUs with integer dot products, at the same transcripts).

MODEL_DIR holds CTranslate2's model.bin and vocabulary.txt; MEL_FILTERS_NPZ is
whisper/assets/mel_filters.npz from the openai-whisper sources. Standard
library only, so it runs on a bare Python.

Why this exists: no GGML Whisper model is published on a package registry,
but CTranslate2 ones are. The weights are OpenAI's, except that CTranslate2
fuses self-attention Q/K/V into one linear layer and cross-attention K/V into
another (the K biases, which OpenAI's model does not have, are zeros).
"""

import io
import struct
import sys
import zipfile

GGML_MAGIC = 0x67676D6C
DTYPE_F32, DTYPE_F16 = 0, 4  # CTranslate2 dtype codes used by Whisper models
DTYPE_SIZES = {0: 4, 1: 1, 2: 2, 3: 4, 4: 2, 5: 2}


def read_string(f):
    (n,) = struct.unpack("<H", f.read(2))
    return f.read(n)[:-1].decode()


class Tensor:
    def __init__(self, dims, dtype, data):
        self.dims, self.dtype, self.data = tuple(dims), dtype, data

    def rows(self, start, stop):
        """Rows [start, stop) of a row-major matrix or vector."""
        row = len(self.data) // self.dims[0]
        dims = (stop - start,) + self.dims[1:]
        return Tensor(dims, self.dtype, self.data[start * row:stop * row])

    def scalar(self):
        fmt = {1: "<b", 2: "<h", 3: "<i"}[self.dtype]
        return struct.unpack(fmt, self.data)[0]

    def is_zero(self):
        return not any(self.data)


def read_ct2(path):
    tensors = {}
    with open(path, "rb") as f:
        (version,) = struct.unpack("<I", f.read(4))
        if version < 5:
            sys.exit(f"unsupported CTranslate2 model version {version}")
        spec = read_string(f)
        if spec != "WhisperSpec":
            sys.exit(f"not a Whisper model: {spec}")
        f.read(4)  # spec revision
        (count,) = struct.unpack("<I", f.read(4))
        for _ in range(count):
            name = read_string(f)
            (ndim,) = struct.unpack("<B", f.read(1))
            dims = struct.unpack(f"<{ndim}I", f.read(4 * ndim))
            (dtype,) = struct.unpack("<B", f.read(1))
            (nbytes,) = struct.unpack("<I", f.read(4))
            tensors[name] = Tensor(dims, dtype, f.read(nbytes))
    return tensors


def read_npy(raw):
    """(shape, little-endian float32 bytes) of a .npy holding f4 or f8 data."""
    if raw[:6] != b"\x93NUMPY":
        sys.exit("mel filters: not a .npy array")
    major = raw[6]
    header_len = struct.unpack("<H" if major == 1 else "<I", raw[8:10] if major == 1 else raw[8:12])[0]
    start = (10 if major == 1 else 12) + header_len
    header = eval(raw[(10 if major == 1 else 12):start].decode("latin1"), {}, {})  # a dict literal
    if header["fortran_order"]:
        sys.exit("mel filters: Fortran order not supported")
    shape, descr, body = header["shape"], header["descr"], raw[start:]
    n = 1
    for d in shape:
        n *= d
    if descr == "<f4":
        return shape, body[: 4 * n]
    if descr == "<f8":
        return shape, struct.pack(f"<{n}f", *struct.unpack(f"<{n}d", body[: 8 * n]))
    sys.exit(f"mel filters: unsupported dtype {descr}")


def bytes_to_unicode():
    """GPT-2's byte <-> printable-character table (as in its encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def to_f32(t):
    if t.dtype == DTYPE_F32:
        return t.data
    if t.dtype != DTYPE_F16:
        sys.exit(f"unsupported tensor dtype {t.dtype}")
    n = len(t.data) // 2
    return struct.pack(f"<{n}f", *struct.unpack(f"<{n}e", t.data))


GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0 = 0, 1, 8
GGML_FTYPE = {"f16": 1, "q8_0": 7}  # ggml_ftype: MOSTLY_F16, MOSTLY_Q8_0
GGML_QNT_VERSION, GGML_QNT_VERSION_FACTOR = 2, 1000
Q8_0_BLOCK = 32


def to_q8_0(t):
    """ggml's quantize_row_q8_0_ref: per 32 values, an f16 scale (max |x| /
    127) and 32 signed bytes (x / scale, rounded half away from zero)."""
    values = struct.unpack(f"<{len(t.data) // 2}e", t.data) if t.dtype == DTYPE_F16 else \
        struct.unpack(f"<{len(t.data) // 4}f", t.data)
    if len(values) % Q8_0_BLOCK:
        sys.exit(f"{len(values)} values do not make whole q8_0 blocks")
    out = bytearray()
    block = struct.Struct(f"<e{Q8_0_BLOCK}b")
    for i in range(0, len(values), Q8_0_BLOCK):
        chunk = values[i:i + Q8_0_BLOCK]
        amax = max(max(chunk), -min(chunk))
        d = amax / 127
        inv = 1 / d if d else 0.0
        # ggml stores d as f16 but quantizes with the f32 value.
        qs = [int(v * inv + (0.5 if v >= 0 else -0.5)) for v in chunk]
        out += block.pack(d, *qs)
    return bytes(out)


def to_f16(t):
    if t.dtype == DTYPE_F16:
        return t.data
    n = len(t.data) // 4
    return struct.pack(f"<{n}e", *struct.unpack(f"<{n}f", t.data))


def openai_tensors(ct):
    """Yields (OpenAI name, Tensor) for every tensor whisper.cpp expects."""
    yield "encoder.conv1.weight", ct["encoder/conv1/weight"]
    yield "encoder.conv1.bias", ct["encoder/conv1/bias"]
    yield "encoder.conv2.weight", ct["encoder/conv2/weight"]
    yield "encoder.conv2.bias", ct["encoder/conv2/bias"]
    yield "encoder.positional_embedding", ct["encoder/position_encodings/encodings"]
    yield "encoder.ln_post.weight", ct["encoder/layer_norm/gamma"]
    yield "encoder.ln_post.bias", ct["encoder/layer_norm/beta"]
    yield "decoder.token_embedding.weight", ct["decoder/embeddings/weight"]
    yield "decoder.positional_embedding", ct["decoder/position_encodings/encodings"]
    yield "decoder.ln.weight", ct["decoder/layer_norm/gamma"]
    yield "decoder.ln.bias", ct["decoder/layer_norm/beta"]

    def norm(dst, src):
        yield f"{dst}.weight", ct[f"{src}/gamma"]
        yield f"{dst}.bias", ct[f"{src}/beta"]

    def linear(dst, src):
        yield f"{dst}.weight", ct[f"{src}/weight"]
        yield f"{dst}.bias", ct[f"{src}/bias"]

    def split(dst_names, src):
        """A fused linear layer → its parts; the key part has no bias."""
        w, b = ct[f"{src}/weight"], ct[f"{src}/bias"]
        size = w.dims[0] // len(dst_names)
        for i, dst in enumerate(dst_names):
            yield f"{dst}.weight", w.rows(i * size, (i + 1) * size)
            bias = b.rows(i * size, (i + 1) * size)
            if dst.endswith(".key"):
                if not bias.is_zero():
                    sys.exit(f"{src}: key bias is not zero; this is not a Whisper model")
            else:
                yield f"{dst}.bias", bias

    def ffn(dst, src):
        yield from norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        yield from linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        yield from linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    for side in ("encoder", "decoder"):
        i = 0
        while f"{side}/layer_{i}/self_attention/linear_0/weight" in ct:
            dst, src = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            yield from norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
            yield from split([f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"], f"{src}/self_attention/linear_0")
            yield from linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
            if side == "decoder":
                yield from norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
                yield from linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
                yield from split([f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"], f"{src}/attention/linear_1")
                yield from linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
            yield from ffn(dst, src)
            i += 1


def count_layers(ct, side):
    i = 0
    while f"{side}/layer_{i}/self_attention/linear_0/weight" in ct:
        i += 1
    return i


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    model_dir, mel_npz, out_path = sys.argv[1:4]
    weight_type = sys.argv[4] if len(sys.argv) == 5 else "f16"
    if weight_type not in GGML_FTYPE:
        sys.exit(f"weight type {weight_type!r}: use f16 or q8_0")
    ftype = GGML_FTYPE[weight_type]
    if weight_type != "f16":
        ftype += GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR
    ct = read_ct2(f"{model_dir}/model.bin")
    with zipfile.ZipFile(mel_npz) as z:
        raw = z.read("mel_80.npy")
    emb = ct["decoder/embeddings/weight"].dims
    enc_pos = ct["encoder/position_encodings/encodings"].dims
    n_mels = ct["encoder/conv1/weight"].dims[1]
    if n_mels != 80:
        sys.exit(f"{n_mels} mel bins: only 80-bin models are supported (use mel_128 for large-v3)")
    hparams = [
        emb[0],  # n_vocab
        enc_pos[0],  # n_audio_ctx
        enc_pos[1],  # n_audio_state
        ct["encoder/num_heads"].scalar(),
        count_layers(ct, "encoder"),
        ct["decoder/position_encodings/encodings"].dims[0],  # n_text_ctx
        emb[1],  # n_text_state
        ct["decoder/num_heads"].scalar(),
        count_layers(ct, "decoder"),
        n_mels,
        ftype,
    ]
    shape, mel = read_npy(raw)

    decoder = bytes_to_unicode()
    tokens = []
    with open(f"{model_dir}/vocabulary.txt", encoding="utf-8") as f:
        for line in f:
            token = line.rstrip("\n")
            if token == "<|endoftext|>":
                break  # whisper.cpp adds the special tokens itself
            tokens.append(bytes(decoder[c] for c in token))

    out = io.BufferedWriter(open(out_path, "wb"), buffer_size=1 << 20)
    out.write(struct.pack("<12i", GGML_MAGIC, *hparams))
    out.write(struct.pack("<2i", *shape))
    out.write(mel)
    out.write(struct.pack("<i", len(tokens)))
    for t in tokens:
        out.write(struct.pack("<i", len(t)))
        out.write(t)
    f32_names = {"encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding", "decoder.positional_embedding"}
    written = 0
    for name, t in openai_tensors(ct):
        dims = t.dims
        if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
            dims = (dims[0], 1)
        as_f32 = len(dims) < 2 or name in f32_names
        # Convolutions stay f16 whatever the matrices are (whisper.cpp's vtype).
        quantized = weight_type == "q8_0" and len(dims) == 2 and not as_f32
        if as_f32:
            data, ggml_type = to_f32(t), GGML_TYPE_F32
        elif quantized:
            data, ggml_type = to_q8_0(t), GGML_TYPE_Q8_0
        else:
            data, ggml_type = to_f16(t), GGML_TYPE_F16
        encoded = name.encode()
        out.write(struct.pack("<3i", len(dims), len(encoded), ggml_type))
        out.write(struct.pack(f"<{len(dims)}i", *reversed(dims)))
        out.write(encoded)
        out.write(data)
        written += 1
    out.close()
    print(f"wrote {out_path}: {written} tensors, {len(tokens)} tokens, hparams {hparams}")


if __name__ == "__main__":
    main()
