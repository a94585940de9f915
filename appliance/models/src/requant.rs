//! Requantizes a whisper.cpp f16 ggml model to q8_0 on the box: every 2-D
//! f16 matrix becomes q8_0 blocks (as whisper.cpp's `quantize` does), the
//! rest is copied as it is.
//!
//! The quantizer is the one [`crate::ct2::convert_to_ggml`] uses for
//! [`crate::ct2::GgmlWeights::Q8_0`], fed the same f16 values, so the file
//! made from the installed `ggml-base.bin` is byte for byte the
//! `whisper-base-q8_0` of the manifest (checked in `tests/fetch.rs`). The
//! box needs no second download for it.
//!
//! Reading is streamed (one chunk of rows at a time) and every count in
//! the input is checked against a named limit before it is used.

use std::io::{ErrorKind, Read, Write};

use thiserror::Error;

use crate::ct2::{quantize_q8_0, GGML_MAGIC, GGML_TYPE_Q8_0, Q8_0_BLOCK};

/// ggml's `ftype` of an f16 model (`mostly f16`).
const FTYPE_F16: i32 = 1;
/// The `ftype` written: quantization version 2 x 1000 + `mostly q8_0` (7).
const FTYPE_Q8_0: i32 = 2007;
/// Most mel bins and FFT bins in the filter bank (whisper has 80 or 128 x 201).
const MAX_MEL_VALUES: u64 = 1 << 20;
/// Most vocabulary entries (whisper has 51 865).
const MAX_TOKENS: u64 = 1 << 20;
/// Longest vocabulary entry, in bytes.
const MAX_TOKEN_BYTES: u64 = 1 << 12;
/// Most dimensions of a tensor.
const MAX_DIMS: u64 = 4;
/// Longest tensor name, in bytes.
const MAX_NAME_BYTES: u64 = 256;
/// Most elements in one tensor (whisper large's biggest has 66 M).
const MAX_ELEMENTS: u64 = 1 << 30;
/// Elements read and written at a time.
const CHUNK_ELEMENTS: usize = 1 << 20;

/// Why a ggml model could not be requantized.
#[derive(Debug, Error)]
pub enum RequantError {
    /// Reading the input failed.
    #[error("reading the ggml model: {0}")]
    Read(#[source] std::io::Error),
    /// Writing the output failed.
    #[error("writing the q8_0 model: {0}")]
    Write(#[source] std::io::Error),
    /// The input ended inside the header or a tensor.
    #[error("the ggml model is truncated: it ends inside {what}")]
    Truncated {
        /// What was being read.
        what: String,
    },
    /// The input is not a ggml whisper model.
    #[error("not a ggml model: magic {found:#010x}, expected {GGML_MAGIC:#010x}")]
    Magic {
        /// The first four bytes, as a little-endian i32.
        found: i32,
    },
    /// The input is not an f16 model (already quantized, or all f32).
    #[error(
        "the ggml model has ftype {found}, only f16 models (ftype {FTYPE_F16}) are requantized"
    )]
    Ftype {
        /// The ftype found.
        found: i32,
    },
    /// A count in the input is negative or over its limit.
    #[error("{what} is {value}, outside 0..={limit}")]
    Limit {
        /// Which count.
        what: String,
        /// Value found.
        value: i64,
        /// The limit.
        limit: u64,
    },
    /// A tensor type other than f32 (0) or f16 (1).
    #[error("tensor {name}: type {ttype}, expected f32 (0) or f16 (1)")]
    TensorType {
        /// The tensor.
        name: String,
        /// Its type id.
        ttype: i32,
    },
    /// A matrix whose rows are not whole q8_0 blocks.
    #[error("tensor {name}: rows of {row} values are not whole {Q8_0_BLOCK}-value q8_0 blocks")]
    Row {
        /// The tensor.
        name: String,
        /// Its row length.
        row: usize,
    },
}

/// What [`requantize_q8_0`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequantSummary {
    /// Tensors in the model.
    pub tensors: usize,
    /// Of them, matrices now in q8_0.
    pub quantized: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Reads an f16 ggml whisper model from `input` and writes it to `out` with
/// every 2-D f16 tensor in q8_0 (blocks of 32 values along a row: an f16
/// scale, the block's largest magnitude / 127, and 32 signed bytes) and
/// `ftype` 2007. Other tensors (f32 biases and positional embeddings, f16
/// convolutions) are copied. `out` should be buffered.
pub fn requantize_q8_0<R: Read, W: Write>(
    mut input: R,
    mut out: W,
) -> Result<RequantSummary, RequantError> {
    let mut bytes = 0u64;
    let mut put = |out: &mut W, b: &[u8]| -> Result<(), RequantError> {
        out.write_all(b).map_err(RequantError::Write)?;
        bytes += b.len() as u64;
        Ok(())
    };
    let magic = read_i32(&mut input, "the magic number")?;
    if magic != GGML_MAGIC {
        return Err(RequantError::Magic { found: magic });
    }
    put(&mut out, &magic.to_le_bytes())?;
    // n_vocab, audio ctx/state/head/layer, text ctx/state/head/layer, mels.
    for i in 0..10 {
        let v = read_i32(&mut input, &format!("hyper-parameter {i}"))?;
        put(&mut out, &v.to_le_bytes())?;
    }
    let ftype = read_i32(&mut input, "the ftype")?;
    if ftype != FTYPE_F16 {
        return Err(RequantError::Ftype { found: ftype });
    }
    put(&mut out, &FTYPE_Q8_0.to_le_bytes())?;

    let n_mel = read_count(&mut input, "mel filter rows", MAX_MEL_VALUES)?;
    let n_fft = read_count(&mut input, "mel filter columns", MAX_MEL_VALUES)?;
    let values = limit("mel filter values", n_mel * n_fft, MAX_MEL_VALUES)?;
    put(&mut out, &(n_mel as i32).to_le_bytes())?;
    put(&mut out, &(n_fft as i32).to_le_bytes())?;
    let filters = read_bytes(&mut input, values as usize * 4, "the mel filters")?;
    put(&mut out, &filters)?;

    let n_tokens = read_count(&mut input, "vocabulary size", MAX_TOKENS)?;
    put(&mut out, &(n_tokens as i32).to_le_bytes())?;
    for i in 0..n_tokens {
        let len = read_count(&mut input, &format!("token {i} length"), MAX_TOKEN_BYTES)?;
        let token = read_bytes(&mut input, len as usize, &format!("token {i}"))?;
        put(&mut out, &(len as i32).to_le_bytes())?;
        put(&mut out, &token)?;
    }

    let (mut tensors, mut quantized) = (0, 0);
    let mut buf = Vec::new();
    while let Some(n_dims) = read_first_i32(&mut input)? {
        let n_dims = count("tensor dimensions", n_dims, MAX_DIMS)? as usize;
        let name_len = read_count(&mut input, "tensor name length", MAX_NAME_BYTES)? as usize;
        let ttype = read_i32(&mut input, "a tensor type")?;
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            dims.push(read_count(&mut input, "a tensor dimension", MAX_ELEMENTS)?);
        }
        let name = read_bytes(&mut input, name_len, "a tensor name")?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let elements = limit(
            &format!("tensor {name}'s element count"),
            dims.iter()
                .try_fold(1u64, |n, d| n.checked_mul(*d))
                .unwrap_or(u64::MAX),
            MAX_ELEMENTS,
        )? as usize;
        let size = match ttype {
            0 => 4,
            1 => 2,
            _ => return Err(RequantError::TensorType { name, ttype }),
        };
        let q8 = ttype == 1 && n_dims == 2;
        // ggml lists dimensions innermost first: dims[0] is the row length.
        let row = dims.first().copied().unwrap_or(1).max(1) as usize;
        if q8 && !row.is_multiple_of(Q8_0_BLOCK) {
            return Err(RequantError::Row { name, row });
        }
        put(&mut out, &(n_dims as i32).to_le_bytes())?;
        put(&mut out, &(name_len as i32).to_le_bytes())?;
        let out_type = if q8 { GGML_TYPE_Q8_0 as i32 } else { ttype };
        put(&mut out, &out_type.to_le_bytes())?;
        for d in &dims {
            put(&mut out, &(*d as i32).to_le_bytes())?;
        }
        put(&mut out, name.as_bytes())?;
        let step = if q8 {
            (CHUNK_ELEMENTS / row).max(1) * row
        } else {
            CHUNK_ELEMENTS
        };
        let mut left = elements;
        while left > 0 {
            let n = step.min(left);
            let raw = read_bytes(&mut input, n * size, &format!("tensor {name}"))?;
            if q8 {
                let vals: Vec<f32> = raw
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect();
                buf.clear();
                quantize_q8_0(&vals, &mut buf);
                put(&mut out, &buf)?;
            } else {
                put(&mut out, &raw)?;
            }
            left -= n;
        }
        tensors += 1;
        quantized += usize::from(q8);
    }
    out.flush().map_err(RequantError::Write)?;
    Ok(RequantSummary {
        tensors,
        quantized,
        bytes,
    })
}

/// `value` when it is within `0..=max`.
fn limit(what: &str, value: u64, max: u64) -> Result<u64, RequantError> {
    if value > max {
        return Err(RequantError::Limit {
            what: what.to_string(),
            value: i64::try_from(value).unwrap_or(i64::MAX),
            limit: max,
        });
    }
    Ok(value)
}

fn read_bytes<R: Read>(input: &mut R, n: usize, what: &str) -> Result<Vec<u8>, RequantError> {
    let mut b = vec![0u8; n];
    input.read_exact(&mut b).map_err(|e| match e.kind() {
        ErrorKind::UnexpectedEof => RequantError::Truncated {
            what: what.to_string(),
        },
        _ => RequantError::Read(e),
    })?;
    Ok(b)
}

fn read_i32<R: Read>(input: &mut R, what: &str) -> Result<i32, RequantError> {
    let b = read_bytes(input, 4, what)?;
    Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// `v` as a count when it is within `0..=max`.
fn count(what: &str, v: i32, max: u64) -> Result<u64, RequantError> {
    let v = u64::try_from(v).map_err(|_| RequantError::Limit {
        what: what.to_string(),
        value: i64::from(v),
        limit: max,
    })?;
    limit(what, v, max)
}

/// A non-negative i32 count, at most `max`.
fn read_count<R: Read>(input: &mut R, what: &str, max: u64) -> Result<u64, RequantError> {
    count(what, read_i32(input, what)?, max)
}

/// The next i32, or `None` at a clean end of input (after the last tensor).
fn read_first_i32<R: Read>(input: &mut R) -> Result<Option<i32>, RequantError> {
    let mut b = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match input.read(&mut b[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(RequantError::Truncated {
                    what: "a tensor header".to_string(),
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(RequantError::Read(e)),
        }
    }
    Ok(Some(i32::from_le_bytes(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Tensor<'a> = (&'a str, &'a [i32], i32, Vec<u8>);

    /// A ggml whisper file: header with `ftype`, a 2x3 filter bank, two
    /// tokens, then `tensors` (name, dims innermost first, type, data).
    fn ggml(ftype: i32, tensors: &[Tensor<'_>]) -> Vec<u8> {
        let mut b = Vec::new();
        let mut i = |v: i32| b.extend_from_slice(&v.to_le_bytes());
        i(GGML_MAGIC);
        for v in [3, 5, 4, 1, 1, 3, 4, 1, 1, 2] {
            i(v);
        }
        i(ftype);
        i(2);
        i(3);
        for v in 0..6 {
            b.extend_from_slice(&(v as f32 * 0.5).to_le_bytes());
        }
        b.extend_from_slice(&2i32.to_le_bytes());
        for t in [&b"a"[..], b"bc"] {
            b.extend_from_slice(&(t.len() as i32).to_le_bytes());
            b.extend_from_slice(t);
        }
        for (name, dims, ttype, data) in tensors {
            for v in [dims.len() as i32, name.len() as i32, *ttype] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            for d in *dims {
                b.extend_from_slice(&d.to_le_bytes());
            }
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(data);
        }
        b
    }

    fn f16s(vals: &[f32]) -> Vec<u8> {
        vals.iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect()
    }

    fn f32s(vals: &[f32]) -> Vec<u8> {
        vals.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn matrices_in_f16_become_q8_0_and_the_rest_is_copied() {
        let w: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) * 0.013).collect();
        let pos: Vec<f32> = (0..64).map(|i| i as f32 * 0.25).collect();
        let conv: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
        let input = ggml(
            1,
            &[
                ("w", &[32, 2], 1, f16s(&w)),
                ("b", &[2], 0, f32s(&[1.5, -2.0])),
                ("pos", &[32, 2], 0, f32s(&pos)),
                ("conv", &[1, 2, 3], 1, f16s(&conv)),
            ],
        );
        let mut out = Vec::new();
        let s = requantize_q8_0(&input[..], &mut out).unwrap();
        assert_eq!(
            s,
            RequantSummary {
                tensors: 4,
                quantized: 1,
                bytes: out.len() as u64
            }
        );
        let rounded: Vec<f32> = w.iter().map(|v| half::f16::from_f32(*v).to_f32()).collect();
        let mut q = Vec::new();
        quantize_q8_0(&rounded, &mut q);
        assert_eq!(q.len(), 2 * 34);
        let want = ggml(
            FTYPE_Q8_0,
            &[
                ("w", &[32, 2], GGML_TYPE_Q8_0 as i32, q),
                ("b", &[2], 0, f32s(&[1.5, -2.0])),
                ("pos", &[32, 2], 0, f32s(&pos)),
                ("conv", &[1, 2, 3], 1, f16s(&conv)),
            ],
        );
        assert_eq!(out, want);
    }

    #[test]
    fn bad_models_get_errors_that_say_what_is_wrong() {
        let w = f16s(&[0.5; 64]);
        let good = ggml(1, &[("w", &[32, 2], 1, w.clone())]);
        let err = |input: &[u8]| requantize_q8_0(input, Vec::new()).unwrap_err().to_string();

        let mut bad = good.clone();
        bad[0] = b'x';
        assert!(err(&bad).contains("not a ggml model"), "{}", err(&bad));

        let quantized = ggml(FTYPE_Q8_0, &[]);
        let e = err(&quantized);
        assert!(e.contains("ftype 2007") && e.contains("only f16"), "{e}");

        let e = err(&good[..good.len() - 3]);
        assert!(e.contains("truncated") && e.contains("tensor w"), "{e}");
        let e = err(&good[..good.len() - w.len() - 1]);
        assert!(e.contains("truncated") && e.contains("tensor name"), "{e}");
        let e = err(&good[..30]);
        assert!(
            e.contains("truncated") && e.contains("hyper-parameter"),
            "{e}"
        );

        let e = err(&ggml(1, &[("odd", &[33, 2], 1, f16s(&[0.0; 66]))]));
        assert!(e.contains("tensor odd") && e.contains("rows of 33"), "{e}");

        let e = err(&ggml(1, &[("q", &[32, 1], 8, vec![0; 34])]));
        assert!(e.contains("tensor q: type 8"), "{e}");

        let e = err(&ggml(1, &[("deep", &[1; 9], 0, vec![0; 4])]));
        assert!(
            e.contains("tensor dimensions is 9") && e.contains("0..=4"),
            "{e}"
        );

        let e = err(&ggml(1, &[("huge", &[1 << 20, 1 << 20], 0, vec![])]));
        assert!(e.contains("huge") && e.contains("element count"), "{e}");

        let e = err(&ggml(1, &[("neg", &[-5], 0, vec![])]));
        assert!(e.contains("tensor dimension is -5"), "{e}");
    }
}
