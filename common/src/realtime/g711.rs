//! G.711 μ-law and A-law (ITU-T G.711), the telephony formats OpenAI's
//! Realtime API takes as `audio/pcmu` and `audio/pcma`: 8 kHz, one byte a
//! sample.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (0..8).rev().find(|e| s & (0x80 << e) != 0).unwrap_or(0);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

pub fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

pub fn alaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample) >> 3;
    let sign = if s >= 0 {
        0x80
    } else {
        s = -s - 1;
        0
    };
    s = s.min(0x0fff);
    let encoded = if s < 32 {
        s >> 1
    } else {
        let exponent = (1..8).rev().find(|e| s >= (16 << e)).unwrap_or(1);
        (exponent << 4) | ((s >> exponent) & 0x0f)
    };
    ((encoded | sign) ^ 0x55) as u8
}

pub fn alaw_decode(byte: u8) -> i16 {
    let a = i32::from(byte ^ 0x55);
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = a & 0x0f;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        // Silence and full scale, as every G.711 table has them.
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0x2a), -32256);
    }

    #[test]
    fn round_trips_stay_within_the_quantization_step() {
        for s in (i16::MIN..=i16::MAX).step_by(97) {
            let tolerance = (i32::from(s).abs() / 16).max(16);
            let u = i32::from(ulaw_decode(ulaw_encode(s)));
            assert!((u - i32::from(s)).abs() <= tolerance, "μ-law {s} -> {u}");
            let a = i32::from(alaw_decode(alaw_encode(s)));
            assert!((a - i32::from(s)).abs() <= tolerance, "A-law {s} -> {a}");
        }
        // Every code decodes to a value that encodes back to itself.
        for b in 0..=255u8 {
            assert_eq!(
                ulaw_encode(ulaw_decode(b)),
                b | if b == 0x7f { 0x80 } else { 0 }
            );
            assert_eq!(alaw_encode(alaw_decode(b)), b);
        }
    }
}
