//! ITU-T G.711 companding: mu-law (PCMU, North America/Japan) and A-law
//! (PCMA, elsewhere), the two codecs every SIP peer offers. Encoding is bit
//! manipulation on the 16-bit sample (after the classic Sun reference
//! implementation); decoding is a 256-entry table built at compile time.

/// Which G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// mu-law, RTP payload type 0 (PCMU).
    Mu,
    /// A-law, RTP payload type 8 (PCMA).
    A,
}

impl Law {
    /// Encodes one sample.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => ulaw_encode(sample),
            Law::A => alaw_encode(sample),
        }
    }

    /// Decodes one code.
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Mu => ulaw_decode(code),
            Law::A => alaw_decode(code),
        }
    }

    /// Encodes `samples` into `out` (pairs up to the shorter length; returns
    /// how many were written). No allocation: usable on the real-time path.
    pub fn encode_into(self, samples: &[i16], out: &mut [u8]) -> usize {
        let n = samples.len().min(out.len());
        for (o, &s) in out[..n].iter_mut().zip(samples) {
            *o = self.encode(s);
        }
        n
    }

    /// Decodes `codes` into `out` (pairs up to the shorter length; returns
    /// how many were written).
    pub fn decode_into(self, codes: &[u8], out: &mut [i16]) -> usize {
        let n = codes.len().min(out.len());
        for (o, &c) in out[..n].iter_mut().zip(codes) {
            *o = self.decode(c);
        }
        n
    }

    /// The code for digital silence (what to send when there is nothing to say).
    pub fn silence(self) -> u8 {
        self.encode(0)
    }
}

const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude mu-law represents, in the 14-bit domain.
const ULAW_CLIP: i32 = 8159;
const QUANT_MASK: u8 = 0x0F;
const SEG_SHIFT: u32 = 4;
const SEG_MASK: u8 = 0x70;
const SIGN_BIT: u8 = 0x80;

/// Upper bound of each mu-law segment (14-bit magnitude + bias/4).
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Upper bound of each A-law segment (13-bit magnitude).
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn segment(value: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&end| value <= end).unwrap_or(8)
}

/// Encodes a 16-bit sample to mu-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    // mu-law works on 14 bits; the two low bits carry nothing it can keep.
    let mut v = i32::from(sample) >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    let seg = segment(v, &SEG_UEND);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let code = ((seg as u8) << SEG_SHIFT) | ((v >> (seg + 1)) as u8 & QUANT_MASK);
    code ^ mask
}

/// Encodes a 16-bit sample to A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13 bits.
    let mut v = i32::from(sample) >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        // One's complement: A-law is symmetric around -1/2 LSB.
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &SEG_AEND);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut code = (seg as u8) << SEG_SHIFT;
    code |= if seg < 2 {
        (v >> 1) as u8 & QUANT_MASK
    } else {
        (v >> seg) as u8 & QUANT_MASK
    };
    code ^ mask
}

const fn ulaw_decode_calc(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & QUANT_MASK) as i32) << 3) + ULAW_BIAS;
    t <<= ((u & SEG_MASK) >> SEG_SHIFT) as u32;
    if u & SIGN_BIT != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

const fn alaw_decode_calc(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & QUANT_MASK) as i32) << 4;
    let seg = ((a & SEG_MASK) >> SEG_SHIFT) as u32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & SIGN_BIT != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_decode_calc(i as u8)
        } else {
            ulaw_decode_calc(i as u8)
        };
        i += 1;
    }
    table
}

static ULAW_TABLE: [i16; 256] = build_table(false);
static ALAW_TABLE: [i16; 256] = build_table(true);

/// Decodes a mu-law code to a 16-bit sample.
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

/// Decodes an A-law code to a 16-bit sample.
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values_from_g711() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        // -1 >> 2 floors to -1: the smallest negative mu-law step.
        assert_eq!(ulaw_decode(ulaw_encode(-1)), -8);
        assert_eq!((Law::Mu.silence(), Law::A.silence()), (0xFF, 0xD5));
    }

    #[test]
    fn every_code_is_stable_under_decode_encode() {
        for code in 0..=255u8 {
            // A-law has no negative zero: every code maps back to itself.
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
            // mu-law 0x7F is "-0", which encodes back as +0 (0xFF).
            let want = if code == 0x7F { 0xFF } else { code };
            assert_eq!(ulaw_encode(ulaw_decode(code)), want, "mu-law {code:#04x}");
        }
    }

    #[test]
    fn decoding_is_monotonic_in_magnitude() {
        for law in [Law::Mu, Law::A] {
            let mut values: Vec<i16> = (0..=255u8).map(|c| law.decode(c)).collect();
            values.sort_unstable();
            values.dedup();
            // 255 distinct levels for mu-law (+0 and -0 coincide), 256 for A-law.
            assert!(values.len() >= 255, "{law:?}: {} levels", values.len());
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        for law in [Law::Mu, Law::A] {
            for s in i16::MIN..=i16::MAX {
                let back = law.decode(law.encode(s));
                let err = (i32::from(back) - i32::from(s)).abs();
                // Steps double per segment (16 levels each) so the error
                // grows with magnitude: 1/32 of the value plus the smallest
                // step, and full-scale clipping (~640 for mu-law).
                let bound = i32::from(s).abs() / 32 + 16;
                let clip = if i32::from(s).abs() > 32000 { 700 } else { 0 };
                assert!(
                    err <= bound.max(clip),
                    "{law:?}: {s} -> {back} (error {err})"
                );
                // Never flips the sign of a real signal.
                assert!(
                    i32::from(back) * i32::from(s) >= 0 || i32::from(s).abs() < 16,
                    "{law:?}: {s} -> {back}"
                );
            }
        }
    }

    #[test]
    fn slices_encode_and_decode_without_allocating() {
        let pcm = [0i16, 1000, -1000, 30000, -30000];
        let mut codes = [0u8; 5];
        assert_eq!(Law::A.encode_into(&pcm, &mut codes), 5);
        let mut back = [0i16; 8];
        assert_eq!(Law::A.decode_into(&codes, &mut back), 5);
        for (a, b) in pcm.iter().zip(&back) {
            assert!((a - b).abs() < 1024);
        }
    }
}
