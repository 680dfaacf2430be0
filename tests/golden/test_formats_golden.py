"""Golden literal encodings, one rule per case (each worked by hand in the comment).

Every case quantizes one block (values first, zeros after) and checks the literal scale byte(s)
and element codes; decode cases check literal values. Notation: X is the MX shared exponent
(scale 2^X, byte X + 127), e the BDR shared exponent, s a pair's microexponent.
"""

import struct

import numpy as np
import pytest

import embcompress as ec
from embcompress.formats import decode_records, get_format

f32 = np.float32
ULP_BELOW_2 = float(np.nextafter(f32(2), f32(0)))  # 1.9999999 (0x3FFFFFFF)
ULP_BELOW_1 = float(np.nextafter(f32(1), f32(0)))
ULP_BELOW_4 = float(np.nextafter(f32(4), f32(0)))


def _encode(fmt, values, mode="floor"):
    block = get_format(fmt).block_size
    x = np.zeros((1, block), f32)
    x[0, : len(values)] = values
    q = ec.quantize(x, fmt, scale_mode=mode)
    return [int(v) for v in q.scales[0]], [int(c) for c in q.codes[0, : len(values)]]


CASES = [
    # --- MXFP8 E4M3: emax 8, emin -6, 3 mantissa bits, max 448 (0x7E) ---------------------------
    # amax 448 = 1.75*2^8 -> X = 8 - 8 = 0. 448 -> 0x7E. 8.5: tie of 8 (0x50, even) and 9 -> 8.
    # 9.5: tie of 9 and 10 (0x52, even) -> 10. 2^-9 is the smallest subnormal -> 0x01; 2^-10 is
    # the tie of 0 and 2^-9 -> 0; 3*2^-10 is the tie of 2^-9 and 2^-8 -> 2^-8 (0x02). -0 -> 0x80.
    ("mxfp8_e4m3", [448, 8.5, 9.5, 2**-9, 2**-10, 3 * 2**-10, -0.0], "floor", [127], [0x7E, 0x50, 0x52, 0x01, 0x00, 0x02, 0x80]),
    # amax 500 -> X = 0; 480 and -500 saturate at +-448 (0x7E, 0xFE), never NaN; 1.0 -> 0x38.
    ("mxfp8_e4m3", [480, -500, 1.0], "floor", [127], [0x7E, 0xFE, 0x38]),
    # mse: X + 1 = 1 makes 480 -> 240 exact and -500 -> -250 -> -256 (0xF8); lower error wins.
    ("mxfp8_e4m3", [480, -500, 1.0], "mse", [128], [0x77, 0xF8, 0x30]),
    # amax one ulp below 2: floor(log2) = 0 from the bits (a float log2 rounds to 1), X = -8,
    # 1.9999999 * 256 = 511.99997 saturates to 0x7E; 1.0 * 256 -> 0x78.
    ("mxfp8_e4m3", [ULP_BELOW_2, 1.0], "floor", [119], [0x7E, 0x78]),
    # all-zero block: the smallest scale 2^-127 (byte 0); signs of zeros kept.
    ("mxfp8_e4m3", [-0.0, 0.0], "floor", [0], [0x80, 0x00]),
    # --- MXFP8 E5M2: emax 15, emin -14, 2 mantissa bits, max 57344 (0x7B), saturating ------------
    # X = 0; 61440 = 1.875*2^15 is the tie of 57344 (odd) and 2^16 (even) -> 2^16 overflows ->
    # saturates to 0x7B like -65000 (0xFB). 2^-16 smallest subnormal 0x01; 2^-17 tie -> 0;
    # 3*2^-17 tie of 1 and 2 subnormal steps -> 2 (0x02).
    ("mxfp8_e5m2", [57344, 61440, -65000, 2**-16, 2**-17, 3 * 2**-17], "floor", [127], [0x7B, 0x7B, 0xFB, 0x01, 0x00, 0x02]),
    # fp32-subnormal amax 2^-140: floor(log2) = -140 exactly, X = -155 clamps to -127 (byte 0);
    # 2^-140 / 2^-127 = 2^-13, an E5M2 normal: exponent field 2 -> 0x08.
    ("mxfp8_e5m2", [2.0**-140], "floor", [0], [0x08]),
    # X = 0; 36864 = 1.125*2^15 is the tie of 1.0 (even) and 1.25 mantissas -> 32768 (0x78).
    ("mxfp8_e5m2", [40960, 36864], "floor", [127], [0x79, 0x78]),
    # --- MXFP6 E3M2: emax 4, emin -2, max 28 (0x1F) --------------------------------------------
    # amax 32 -> X = 5 - 4 = 1, elements halved. 28 -> 14 -> 0x1B; 30 -> 15, tie of 14 (odd) and
    # 16 (even) -> 0x1C; -32 -> -16 -> 0x3C. 2^-5 and 2^-6 fall to 0 (ties/below half of 2^-4);
    # 3*2^-6 -> 1 subnormal step (0x01). -0 -> 0x20.
    ("mxfp6_e3m2", [28, 30, -32, 2**-4, 2**-5, 3 * 2**-5, -0.0], "floor", [128], [0x1B, 0x1C, 0x3C, 0x00, 0x00, 0x01, 0x20]),
    # amax one ulp below 1: floor(log2) = -1, X = -5; 31.999998 saturates at 28 (0x1F).
    ("mxfp6_e3m2", [ULP_BELOW_1], "floor", [122], [0x1F]),
    # --- MXFP6 E2M3: emax 2, emin 0, max 7.5 (0x1F) --------------------------------------------
    # amax 8 -> X = 1. 7.5 -> 3.75 (0x17); 7.75 -> 3.875, tie of 3.75 (odd) and 4 (even) -> 0x18;
    # -8 -> -4 (0x38); 2^-4 tie of 0 and 2^-3 -> 0; 3*2^-5 -> 2^-3 (0x01); -0 -> 0x20.
    ("mxfp6_e2m3", [7.5, 7.75, -8, 2**-3, 2**-4, 3 * 2**-4, -0.0], "floor", [128], [0x17, 0x18, 0x38, 0x00, 0x00, 0x01, 0x20]),
    # amax 1.1875 -> X = -2, elements x4: 4 (0x18); 4.25 tie of 4 (even) and 4.5 -> 0x18;
    # 4.75 tie of 4.5 (odd) and 5 (even) -> 0x1A.
    ("mxfp6_e2m3", [1.0, 1.0625, 1.1875], "floor", [125], [0x18, 0x18, 0x1A]),
    # --- MXFP4 E2M1: values 0, 0.5, 1, 1.5, 2, 3, 4, 6 ----------------------------------------
    # amax 7 -> X = 0. 6 -> 0x7; 5 tie of 4 (0x6, even) and 6 -> 0x6; -7 saturates -6 (0xF);
    # 0.25 tie of 0 and 0.5 -> 0; 0.75 tie of 0.5 (odd) and 1 -> 0x2; 2.5 tie of 2 and 3 -> 0x4.
    ("mxfp4_e2m1", [6, 5, -7, 0.25, 0.75, 2.5, -0.0], "floor", [127], [0x7, 0x6, 0xF, 0x0, 0x2, 0x4, 0x8]),
    # amax one ulp below 4: X = 1 - 2 = -1; 7.9999995 saturates at 6 (0x7); 1.0 * 2 -> 0x4.
    ("mxfp4_e2m1", [ULP_BELOW_4, 1.0], "floor", [126], [0x7, 0x4]),
    ("mxfp4_e2m1", [ULP_BELOW_4, 1.0], "mse", [127], [0x6, 0x2]),  # X + 1: 3.9999998 -> 4, 1 -> 1
    # --- MXINT8: k / 64, |k| <= 127, two's complement ------------------------------------------
    # X = 0. 1 -> 64 (0x40); 3/128 -> 1.5, tie -> 2; -3/128 -> -2 (0xFE, odd symmetry);
    # 2.5/64 -> 2.5, tie -> 2; -1 -> -64 (0xC0); -0 -> 0 (two's complement has no -0).
    ("mxint8", [1.0, 3 / 128, -3 / 128, 2.5 / 64, -1.0, -0.0], "floor", [127], [0x40, 0x02, 0xFE, 0x02, 0xC0, 0x00]),
    # amax one ulp below 2: X = 0; 127.99999 clamps to 127 (0x7F) and its negative to -127 (0x81).
    ("mxint8", [ULP_BELOW_2, -ULP_BELOW_2], "floor", [127], [0x7F, 0x81]),
    # --- MX9 (b = 8): q = e - s - 6 -----------------------------------------------------------
    # e = 0. Pair (1, 0.25): 1 has exponent e -> s = 0 -> 64 (0x40), 16 (0x10). Pair (0.3, 0.3):
    # both below e -> s = 1 -> 0.3 * 128 = 38.4 -> 38 (0x26). Pair (-0, 1.5*2^-8): s = 1 ->
    # -0 keeps its sign bit (0x80); 0.75 -> 1. Microexponents: pairs 1..7 -> 0b11111110.
    ("mx9", [1.0, 0.25, 0.3, 0.3, -0.0, 1.5 * 2**-8], "floor", [127, 0xFE], [0x40, 0x10, 0x26, 0x26, 0x80, 0x01]),
    # amax one ulp below 2: e = 0 (not 1); 127.99999 -> 128 clamps to 127; 2^-8 * 64 = 0.25 -> 0.
    ("mx9", [ULP_BELOW_2, 2**-8], "floor", [127, 0xFE], [0x7F, 0x00]),
    # --- MX6 (b = 5): q = e - s - 3 -----------------------------------------------------------
    # e = 0. Pair (1, 0.3): s = 0 -> 8 (0x08), 2.4 -> 2. Pair (0.375, 0.3): s = 1 -> 6, 4.8 -> 5.
    # Pair (0.125, 0.0625): s = 1 -> 2, 1.
    ("mx6", [1.0, 0.3, 0.375, 0.3, 0.125, 0.0625], "floor", [127, 0xFE], [0x08, 0x02, 0x06, 0x05, 0x02, 0x01]),
    # Pair (-1, -0): s = 0 -> sign bit 0x10 | 8 = 0x18, -0 -> 0x10. Pair (0.75, 0.625): s = 1 -> 12, 10.
    ("mx6", [-1.0, -0.0, 0.75, 0.625], "floor", [127, 0xFE], [0x18, 0x10, 0x0C, 0x0A]),
    # --- MX4 (b = 3): q = e - s - 1, |code| <= 3 -------------------------------------------------
    # e = 0. Pair (1, 0.75): s = 0 -> 2, 1.5 tie -> 2. Pair (0.25, 0.2): s = 1 -> 1, 0.8 -> 1.
    # Pair (0.5, 0.5): s = 1 -> 2, 2.
    ("mx4", [1.0, 0.75, 0.25, 0.2, 0.5, 0.5], "floor", [127, 0xFE], [0x2, 0x2, 0x1, 0x1, 0x2, 0x2]),
    # Pair (1.9, 1.5): s = 0 -> 3.8 -> 4 clamps to 3; 3. Pair (-1, 1): s = 0 -> 0x4 | 2, 2.
    # Microexponents: pairs 2..7 only -> 0b11111100.
    ("mx4", [1.9, 1.5, -1.0, 1.0], "floor", [127, 0xFC], [0x3, 0x3, 0x6, 0x2]),
]


@pytest.mark.parametrize("fmt, values, mode, scales, codes", CASES)
def test_golden_encoding(fmt, values, mode, scales, codes):
    got_scales, got_codes = _encode(fmt, values, mode)
    assert got_scales[: len(scales)] == scales
    assert got_codes == codes


def test_golden_smallest_scale_decodes_as_2_pow_minus_127():
    # E8M0 byte 0 is 2^-127 (an fp32 subnormal) in decode too: 0x7E (448) -> 448 * 2^-127.
    rec = np.zeros((1, 33), np.uint8)
    rec[0, 1] = 0x7E
    rec[0, 2] = 0x08  # 2^-6 * 2^-127 = 2^-133
    out = decode_records(rec, "mxfp8_e4m3", 32)
    assert out[0, 0] == f32(448 * 2.0**-127) and out[0, 1] == f32(2.0**-133)
    # and an fp32-subnormal input block round-trips through it: 2^-140 in E5M2 (code 0x08 above)
    x = np.zeros((1, 32), f32)
    x[0, 0] = 2.0**-140
    assert ec.dequantize(ec.quantize(x, "mxfp8_e5m2"))[0, 0] == f32(2.0**-140)


def test_golden_nan_scale_and_bdr_smallest_exponent():
    rec = np.zeros((1, 33), np.uint8)
    rec[0, 0] = 0xFF  # E8M0 NaN: the whole block decodes to NaN
    assert np.isnan(decode_records(rec, "mxfp8_e4m3", 32)).all()
    # MX9 with e = -127 (byte 0), s = 0, code 0x7F: 127 * 2^(-127 - 6), an exact fp32 subnormal.
    rec = np.zeros((1, 2 + 16), np.uint8)
    rec[0, 2] = 0x7F
    assert decode_records(rec, "mx9", 16)[0, 0] == f32(127 * 2.0**-133)


def test_golden_rowwise():
    x = np.array([[-1.0, 0.0, 0.5, 1.0]], f32)
    # int8: scale = 2/255, bias = -1 (float32); inverse 255 / (2 + 1e-8) = 127.5 in float32;
    # codes rint((x + 1) * 127.5): 0, 127.5 -> 128 (tie to even), 191.25 -> 191, 255.
    q = ec.quantize(x, "int8_rowwise")
    assert struct.unpack("<ff", q.data[0, :8].tobytes()) == (float(f32(2) / f32(255)), -1.0)
    assert list(q.codes[0]) == [0, 128, 191, 255]
    # int4: bias fp16(-1); scale fp16(2/15) = 0.13330078125; codes rint((x + 1) / scale):
    # 0, 7.5018 -> 8, 11.2527 -> 11, 15.0037 -> 15; packed low nibble first: 0x80, 0xFB.
    q = ec.quantize(x, "int4_rowwise")
    assert struct.unpack("<ee", q.data[0, :4].tobytes()) == (0.13330078125, -1.0)
    assert list(q.data[0, 4:]) == [0x80, 0xFB]
    # int2: scale fp16(2/3) = 0.66650390625; codes 0, 1.5004 -> 2, 2.2506 -> 2, 3.0007 -> 3;
    # element 4i in the lowest bits: 0 | 2 << 2 | 2 << 4 | 3 << 6 = 0xE8.
    q = ec.quantize(x, "int2_rowwise")
    assert struct.unpack("<ee", q.data[0, :4].tobytes()) == (0.66650390625, -1.0)
    assert list(q.data[0, 4:]) == [0xE8]
    # a constant row: range 0 -> int8 scale 0 and codes 0; int4 scale 1 (fbgemm's rule), codes 0.
    c = np.full((1, 4), 0.5, f32)
    assert struct.unpack("<ff", ec.quantize(c, "int8_rowwise").data[0, :8].tobytes()) == (0.0, 0.5)
    assert struct.unpack("<ee", ec.quantize(c, "int4_rowwise").data[0, :4].tobytes()) == (1.0, 0.5)
    np.testing.assert_array_equal(ec.dequantize(ec.quantize(c, "int4_rowwise")), c)


def test_golden_floats():
    # fp16: 1 + 2^-11 is the tie of 1 and 1 + 2^-10 -> 1 (even); 65520 rounds up past 65504 -> inf
    # (kept when asked with nonfinite="nan_block"; refused by default, see test_formats_codec).
    x = np.array([[1 + 2**-11, 65520.0, -0.0]], f32)
    assert list(ec.quantize(x, "fp16", nonfinite="nan_block").codes[0]) == [0x3C00, 0x7C00, 0x8000]
    # bf16: 1 + 2^-8 is the tie of 1 (even) and 1 + 2^-7 -> 0x3F80; 1 + 3*2^-8 is the tie of
    # 1 + 2^-7 (odd) and 1 + 2^-6 -> 0x3F82; -0 -> 0x8000.
    x = np.array([[1 + 2**-8, 1 + 3 * 2**-8, -0.0]], f32)
    assert list(ec.quantize(x, "bf16").codes[0]) == [0x3F80, 0x3F82, 0x8000]
