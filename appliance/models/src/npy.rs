//! Minimal reader for NumPy `.npy` arrays and `.npz` archives of them.
//!
//! Only what the Whisper conversion needs: little-endian float arrays in C
//! order (`mel_filters.npz`), returned as `f32`. Anything else is rejected
//! with an error naming the array, never guessed at.

use std::io::{Cursor, Read};

use thiserror::Error;

/// Largest `.npy` header accepted; real headers are ~128 bytes, and the limit
/// keeps a corrupt length field from asking for gigabytes.
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// Largest array (in elements) accepted from an `.npz`: mel filter banks are
/// ~26k elements, so this is generous while still bounding memory.
pub const MAX_ELEMENTS: usize = 16 * 1024 * 1024;

/// Why an `.npy` array or `.npz` archive could not be read.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The data does not start with the `\x93NUMPY` magic.
    #[error("{array}: not a .npy array (bad magic)")]
    BadMagic {
        /// Array name (member name inside the `.npz`).
        array: String,
    },
    /// A format version this reader does not know.
    #[error("{array}: unsupported .npy version {major}.{minor}")]
    Version {
        /// Array name.
        array: String,
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// The data ended before the header or the array data did.
    #[error("{array}: truncated (need {needed} bytes, have {have})")]
    Truncated {
        /// Array name.
        array: String,
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        have: usize,
    },
    /// The header is over [`MAX_HEADER_LEN`] or the array over [`MAX_ELEMENTS`].
    #[error("{array}: {what} of {value} exceeds the limit {limit}")]
    Limit {
        /// Array name.
        array: String,
        /// Which limit (`header length`, `elements`).
        what: &'static str,
        /// Value found.
        value: usize,
        /// The limit.
        limit: usize,
    },
    /// The header dictionary could not be understood.
    #[error("{array}: bad header {header:?}: {reason}")]
    Header {
        /// Array name.
        array: String,
        /// The header text.
        header: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// A dtype other than little-endian f2/f4/f8.
    #[error("{array}: unsupported dtype {descr:?} (want <f2, <f4 or <f8)")]
    Dtype {
        /// Array name.
        array: String,
        /// The `descr` value.
        descr: String,
    },
    /// `fortran_order: True`, which would need a transpose.
    #[error("{array}: Fortran-ordered arrays are not supported")]
    FortranOrder {
        /// Array name.
        array: String,
    },
    /// The `.npz` zip could not be opened or read.
    #[error("npz archive: {source}")]
    Zip {
        /// Underlying zip error.
        #[from]
        source: zip::result::ZipError,
    },
    /// The `.npz` holds no array of this name.
    #[error("npz archive has no array {array:?}")]
    MissingArray {
        /// Requested array name (without `.npy`).
        array: String,
    },
    /// Reading a member of the `.npz` failed.
    #[error("npz member {array}: {source}")]
    Io {
        /// Array name.
        array: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
}

/// A dense float array in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements, converted to `f32`.
    pub data: Vec<f32>,
}

/// Parses one `.npy` file held in memory; `name` is only used in errors.
pub fn parse_npy(name: &str, bytes: &[u8]) -> Result<Array, NpyError> {
    let truncated = |needed: usize| NpyError::Truncated {
        array: name.to_owned(),
        needed,
        have: bytes.len(),
    };
    if bytes.len() < 8 {
        return Err(truncated(8));
    }
    if &bytes[..6] != b"\x93NUMPY" {
        return Err(NpyError::BadMagic {
            array: name.to_owned(),
        });
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start) = match major {
        1 => {
            if bytes.len() < 10 {
                return Err(truncated(10));
            }
            (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
        }
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(truncated(12));
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        _ => {
            return Err(NpyError::Version {
                array: name.to_owned(),
                major,
                minor,
            })
        }
    };
    if header_len > MAX_HEADER_LEN {
        return Err(NpyError::Limit {
            array: name.to_owned(),
            what: "header length",
            value: header_len,
            limit: MAX_HEADER_LEN,
        });
    }
    let data_start = header_start + header_len;
    if bytes.len() < data_start {
        return Err(truncated(data_start));
    }
    let header = String::from_utf8_lossy(&bytes[header_start..data_start]).into_owned();
    let bad = |reason| NpyError::Header {
        array: name.to_owned(),
        header: header.clone(),
        reason,
    };
    let descr = dict_value(&header, "descr").ok_or_else(|| bad("no 'descr'"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"').to_owned();
    let fortran = dict_value(&header, "fortran_order").ok_or_else(|| bad("no 'fortran_order'"))?;
    let shape_txt = dict_value(&header, "shape").ok_or_else(|| bad("no 'shape'"))?;
    if fortran.starts_with("True") {
        return Err(NpyError::FortranOrder {
            array: name.to_owned(),
        });
    }
    let inner = shape_txt
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| bad("shape is not a tuple"))?;
    let mut shape = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        shape.push(
            part.parse::<usize>()
                .map_err(|_| bad("shape entry is not an integer"))?,
        );
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or(NpyError::Limit {
            array: name.to_owned(),
            what: "elements",
            value: shape.iter().fold(1usize, |a, &d| a.saturating_mul(d)),
            limit: MAX_ELEMENTS,
        })?;
    let item = match descr.as_str() {
        "<f2" => 2,
        "<f4" => 4,
        "<f8" => 8,
        _ => {
            return Err(NpyError::Dtype {
                array: name.to_owned(),
                descr,
            })
        }
    };
    let needed = data_start + count * item;
    if bytes.len() < needed {
        return Err(truncated(needed));
    }
    let raw = &bytes[data_start..needed];
    let data = match item {
        2 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        4 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        _ => raw
            .chunks_exact(8)
            .map(|c| {
                // `astype(np.float32)` rounds to nearest, as does `as f32`.
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            })
            .collect(),
    };
    Ok(Array { shape, data })
}

/// Returns the raw text of `key`'s value in a Python dict literal header.
///
/// The header is a tiny, machine-written literal (`{'descr': '<f4',
/// 'fortran_order': False, 'shape': (80, 201), }`), so a scan for the key and
/// the next top-level comma is enough; a full Python parser would only add
/// surface.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat_single = format!("'{key}'");
    let pat_double = format!("\"{key}\"");
    let at = header
        .find(&pat_single)
        .map(|i| i + pat_single.len())
        .or_else(|| header.find(&pat_double).map(|i| i + pat_double.len()))?;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim_end()),
            _ => {}
        }
    }
    None
}

/// Reads array `array` (member `array.npy`) from an `.npz` archive in memory.
pub fn read_npz_array(npz: &[u8], array: &str) -> Result<Array, NpyError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(npz))?;
    let member = format!("{array}.npy");
    let mut file = match zip.by_name(&member) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(NpyError::MissingArray {
                array: array.to_owned(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let limit = (MAX_HEADER_LEN + MAX_ELEMENTS * 8 + 16) as u64;
    let mut buf = Vec::new();
    (&mut file)
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|source| NpyError::Io {
            array: array.to_owned(),
            source,
        })?;
    parse_npy(array, &buf)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Builds a v1 `.npy` file of little-endian f4 values.
    pub(crate) fn npy_f4(shape: &[usize], data: &[f32]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let shape_txt = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        let mut header =
            format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for v in data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Builds an `.npz` (deflated zip) of the given arrays.
    pub(crate) fn npz(arrays: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in arrays {
            w.start_file(format!("{name}.npy"), opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn parses_2d_f4_array() {
        let bytes = npy_f4(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let a = parse_npy("x", &bytes).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
    }

    #[test]
    fn parses_1d_shape_with_trailing_comma() {
        let a = parse_npy("x", &npy_f4(&[3], &[1.0, 2.0, 3.0])).unwrap();
        assert_eq!(a.shape, vec![3]);
    }

    #[test]
    fn rejects_truncated_data() {
        let mut bytes = npy_f4(&[2, 3], &[0.0; 6]);
        bytes.truncate(bytes.len() - 1);
        assert!(matches!(
            parse_npy("x", &bytes),
            Err(NpyError::Truncated { .. })
        ));
    }

    /// Replaces `from` by `to` in a header and fixes the header length field.
    fn edit_header(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
        let header = std::str::from_utf8(&bytes[10..]).unwrap().replace(from, to);
        let mut out = bytes[..8].to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out
    }

    #[test]
    fn rejects_other_dtypes_and_fortran_order() {
        // An empty array: the header is the whole file after the prefix.
        let bytes = npy_f4(&[0], &[]);
        let int = edit_header(&bytes, "<f4", "<i4");
        assert!(matches!(parse_npy("x", &int), Err(NpyError::Dtype { .. })));
        let fortran = edit_header(&bytes, "False", "True");
        assert!(matches!(
            parse_npy("x", &fortran),
            Err(NpyError::FortranOrder { .. })
        ));
        assert!(matches!(
            parse_npy("x", b"PK\x03\x04garbage"),
            Err(NpyError::BadMagic { .. })
        ));
    }

    #[test]
    fn rejects_absurd_shapes() {
        let b = edit_header(&npy_f4(&[0], &[]), "(0,)", "(99999999999,)");
        assert!(matches!(parse_npy("x", &b), Err(NpyError::Limit { .. })));
    }

    #[test]
    fn reads_named_array_from_npz() {
        let z = npz(&[
            ("mel_80", npy_f4(&[1, 2], &[0.5, 0.25])),
            ("mel_128", npy_f4(&[1], &[9.0])),
        ]);
        let a = read_npz_array(&z, "mel_80").unwrap();
        assert_eq!(a.data, vec![0.5, 0.25]);
        assert!(matches!(
            read_npz_array(&z, "mel_40"),
            Err(NpyError::MissingArray { .. })
        ));
    }
}
