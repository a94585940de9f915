//! CTranslate2 Whisper `model.bin` reader and converter to whisper.cpp's ggml format.
//!
//! Registry packages carry Whisper only as CTranslate2 (faster-whisper) models;
//! whisper.cpp wants the ggml layout of its `convert-pt-to-ggml.py`. This module
//! reads the CT2 variable index, dequantizes int8/int16 weights with their
//! `weight_scale`, renames tensors to the PyTorch names and streams an f16 ggml
//! file, one row chunk at a time, so memory stays at a few MiB whatever the
//! model size. The output is byte-identical to `shared/tools/ct2_to_ggml.py`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::npy::{self, NpyError};

/// Largest tensor rank accepted (Whisper uses at most 3).
pub const MAX_RANK: usize = 8;
/// Largest number of variables accepted in one model (Whisper large has ~1300).
pub const MAX_VARIABLES: usize = 100_000;
/// Elements converted per chunk while streaming; bounds peak memory.
const CHUNK_ELEMENTS: usize = 1 << 20;
/// ggml file magic (`"ggml"` as a little-endian i32).
pub(crate) const GGML_MAGIC: i32 = 0x6767_6d6c;

/// Element type of a CTranslate2 variable, by its on-disk id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// id 0
    F32,
    /// id 1, quantized with a `weight_scale`
    I8,
    /// id 2, quantized with a `weight_scale`
    I16,
    /// id 3
    I32,
    /// id 4
    F16,
    /// id 5
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Option<DType> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }

    fn is_quantized(self) -> bool {
        matches!(self, DType::I8 | DType::I16)
    }

    /// Decodes one little-endian element to f32 exactly (all casts are lossless
    /// except i32 beyond 2^24, which numpy's `astype(float32)` rounds the same way).
    fn decode(self, b: &[u8]) -> f32 {
        match self {
            DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            DType::I8 => f32::from(b[0] as i8),
            DType::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])),
            DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            DType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            DType::BF16 => f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16),
        }
    }
}

/// Why a CT2 model could not be read or converted.
#[derive(Debug, Error)]
pub enum Ct2Error {
    /// Opening, reading or seeking the model file failed.
    #[error("{path}: {source}")]
    Io {
        /// The model file.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The file ended inside the header or a variable.
    #[error("{path}: truncated while reading {what}")]
    Truncated {
        /// The model file.
        path: PathBuf,
        /// What was being read.
        what: String,
    },
    /// Binary versions before 5 lay variables out differently.
    #[error("{path}: unsupported CTranslate2 binary version {version} (need >= 5)")]
    Version {
        /// The model file.
        path: PathBuf,
        /// Version found.
        version: u32,
    },
    /// A count in the header is over its limit.
    #[error("{path}: {what} {value} exceeds the limit {limit}")]
    Limit {
        /// The model file.
        path: PathBuf,
        /// Which count.
        what: &'static str,
        /// Value found.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// A dtype id this reader does not know.
    #[error("{path}: variable {variable}: unknown dtype id {dtype}")]
    Dtype {
        /// The model file.
        path: PathBuf,
        /// Variable name.
        variable: String,
        /// The id.
        dtype: u8,
    },
    /// A variable's byte count disagrees with its shape and dtype.
    #[error("{path}: variable {variable}: {actual} bytes, shape and dtype say {expected}")]
    VariableSize {
        /// The model file.
        path: PathBuf,
        /// Variable name.
        variable: String,
        /// Bytes implied by shape and dtype.
        expected: u64,
        /// Bytes declared.
        actual: u64,
    },
    /// The model is not a Whisper model.
    #[error("{path}: model spec is {spec:?}, expected \"WhisperSpec\"")]
    Spec {
        /// The model file.
        path: PathBuf,
        /// Spec name found.
        spec: String,
    },
    /// A variable the conversion needs is absent.
    #[error("model has no variable {variable}")]
    MissingVariable {
        /// Variable name.
        variable: String,
    },
    /// A variable has a shape the conversion cannot use.
    #[error("variable {variable}: shape {actual:?}, expected {expected}")]
    Shape {
        /// Variable name.
        variable: String,
        /// Human description of the expected shape.
        expected: &'static str,
        /// Shape found.
        actual: Vec<usize>,
    },
    /// whisper.cpp has no key bias; a non-zero one cannot be represented.
    #[error("variable {variable}: key bias is not zero, ggml has no key bias")]
    NonZeroKeyBias {
        /// The fused bias variable.
        variable: String,
    },
    /// The mel filter bank could not be read.
    #[error("mel_filters.npz: {0}")]
    Npy(#[from] NpyError),
    /// A tokenizer line is malformed.
    #[error("{file}: line {line}: {reason}")]
    Tiktoken {
        /// Tokenizer file name.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Writing the output failed.
    #[error("writing ggml output: {0}")]
    Write(#[source] std::io::Error),
}

/// One variable's place in the model file.
#[derive(Debug, Clone)]
pub struct Variable {
    /// CT2 name, e.g. `encoder/layer_0/ffn/linear_0/weight`.
    pub name: String,
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Byte offset of the data in the file.
    pub offset: u64,
}

impl Variable {
    fn elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// Elements per outermost index (1 for scalars and vectors).
    fn row_len(&self) -> usize {
        self.dims.iter().skip(1).product()
    }

    fn rows(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }
}

/// The index of a CTranslate2 `model.bin`: spec and variables, data left on disk.
#[derive(Debug, Clone)]
pub struct Ct2Model {
    /// The file the index was read from.
    pub path: PathBuf,
    /// Binary format version.
    pub version: u32,
    /// Spec name, `WhisperSpec` for Whisper.
    pub spec: String,
    /// Spec revision.
    pub revision: u32,
    /// Variables in file order.
    pub variables: Vec<Variable>,
    /// Alias name -> target variable name.
    pub aliases: Vec<(String, String)>,
    by_name: HashMap<String, usize>,
}

/// Reads the header structure of a CT2 file, tracking the position itself
/// because the data is skipped with seeks.
struct HeaderReader<'a, R> {
    r: R,
    path: &'a Path,
    pos: u64,
}

impl<R: Read + Seek> HeaderReader<'_, R> {
    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>, Ct2Error> {
        let mut buf = vec![0u8; n];
        self.r.read_exact(&mut buf).map_err(|e| self.eof(e, what))?;
        self.pos += n as u64;
        Ok(buf)
    }

    fn eof(&self, e: std::io::Error, what: &str) -> Ct2Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Ct2Error::Truncated {
                path: self.path.to_owned(),
                what: what.to_owned(),
            }
        } else {
            Ct2Error::Io {
                path: self.path.to_owned(),
                source: e,
            }
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8, Ct2Error> {
        Ok(self.bytes(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, Ct2Error> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Ct2Error> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A u16-length-prefixed string, NUL-terminated on disk.
    fn string(&mut self, what: &str) -> Result<String, Ct2Error> {
        let n = self.u16(what)? as usize;
        let b = self.bytes(n, what)?;
        let end = b.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
        Ok(String::from_utf8_lossy(&b[..end]).into_owned())
    }

    fn skip(&mut self, n: u64, what: &str, file_len: u64) -> Result<(), Ct2Error> {
        if self.pos + n > file_len {
            return Err(Ct2Error::Truncated {
                path: self.path.to_owned(),
                what: what.to_owned(),
            });
        }
        let seek = i64::try_from(n).map_err(|_| Ct2Error::Truncated {
            path: self.path.to_owned(),
            what: what.to_owned(),
        })?;
        self.r
            .seek(SeekFrom::Current(seek))
            .map_err(|e| self.eof(e, what))?;
        self.pos += n;
        Ok(())
    }
}

impl Ct2Model {
    /// Reads the variable index of `path` (data is read later, on demand).
    pub fn open(path: &Path) -> Result<Ct2Model, Ct2Error> {
        let io = |source| Ct2Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut h = HeaderReader {
            r: BufReader::new(file),
            path,
            pos: 0,
        };
        let version = h.u32("version")?;
        if version < 5 {
            return Err(Ct2Error::Version {
                path: path.to_owned(),
                version,
            });
        }
        let spec = h.string("spec name")?;
        let revision = h.u32("spec revision")?;
        let count = h.u32("variable count")?;
        if count as usize > MAX_VARIABLES {
            return Err(Ct2Error::Limit {
                path: path.to_owned(),
                what: "variable count",
                value: u64::from(count),
                limit: MAX_VARIABLES as u64,
            });
        }
        let mut variables = Vec::with_capacity(count as usize);
        let mut by_name = HashMap::new();
        for _ in 0..count {
            let name = h.string("variable name")?;
            let rank = h.u8(&name)? as usize;
            if rank > MAX_RANK {
                return Err(Ct2Error::Limit {
                    path: path.to_owned(),
                    what: "tensor rank",
                    value: rank as u64,
                    limit: MAX_RANK as u64,
                });
            }
            let mut dims = Vec::with_capacity(rank);
            for _ in 0..rank {
                dims.push(h.u32(&name)? as usize);
            }
            let id = h.u8(&name)?;
            let dtype = DType::from_id(id).ok_or_else(|| Ct2Error::Dtype {
                path: path.to_owned(),
                variable: name.clone(),
                dtype: id,
            })?;
            let nbytes = u64::from(h.u32(&name)?);
            let expected = dims
                .iter()
                .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64));
            if expected != Some(nbytes) {
                return Err(Ct2Error::VariableSize {
                    path: path.to_owned(),
                    variable: name,
                    expected: expected.unwrap_or(u64::MAX),
                    actual: nbytes,
                });
            }
            let offset = h.pos;
            h.skip(nbytes, &name, file_len)?;
            by_name.insert(name.clone(), variables.len());
            variables.push(Variable {
                name,
                dims,
                dtype,
                offset,
            });
        }
        let mut aliases = Vec::new();
        if h.pos < file_len {
            let n = h.u32("alias count")?;
            if n as usize > MAX_VARIABLES {
                return Err(Ct2Error::Limit {
                    path: path.to_owned(),
                    what: "alias count",
                    value: u64::from(n),
                    limit: MAX_VARIABLES as u64,
                });
            }
            for _ in 0..n {
                let alias = h.string("alias")?;
                let target = h.string("alias target")?;
                aliases.push((alias, target));
            }
        }
        Ok(Ct2Model {
            path: path.to_owned(),
            version,
            spec,
            revision,
            variables,
            aliases,
            by_name,
        })
    }

    /// Looks a variable up by its CT2 name.
    pub fn variable(&self, name: &str) -> Result<&Variable, Ct2Error> {
        self.by_name
            .get(name)
            .map(|&i| &self.variables[i])
            .ok_or_else(|| Ct2Error::MissingVariable {
                variable: name.to_owned(),
            })
    }
}

/// The openai-whisper assets the ggml header embeds.
#[derive(Debug, Clone)]
pub struct WhisperAssets {
    /// `mel_filters.npz`.
    pub mel_filters_npz: Vec<u8>,
    /// `multilingual.tiktoken` (used when the vocabulary has >= 51865 tokens).
    pub multilingual_tiktoken: Vec<u8>,
    /// `gpt2.tiktoken` (English-only models).
    pub gpt2_tiktoken: Vec<u8>,
}

impl WhisperAssets {
    /// File names, inside `whisper/assets/`, of the three assets.
    pub const FILES: [&'static str; 3] =
        ["mel_filters.npz", "multilingual.tiktoken", "gpt2.tiktoken"];

    /// Reads the assets from an unpacked `whisper/assets` directory.
    pub fn from_dir(dir: &Path) -> Result<WhisperAssets, Ct2Error> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| Ct2Error::Io { path, source })
        };
        Ok(WhisperAssets {
            mel_filters_npz: read(Self::FILES[0])?,
            multilingual_tiktoken: read(Self::FILES[1])?,
            gpt2_tiktoken: read(Self::FILES[2])?,
        })
    }
}

/// Whisper hyperparameters, in ggml header order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HParams {
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Encoder positions (1500).
    pub n_audio_ctx: usize,
    /// Encoder width.
    pub n_audio_state: usize,
    /// Encoder heads (width / 64).
    pub n_audio_head: usize,
    /// Encoder layers.
    pub n_audio_layer: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
    /// Decoder width.
    pub n_text_state: usize,
    /// Decoder heads (width / 64).
    pub n_text_head: usize,
    /// Decoder layers.
    pub n_text_layer: usize,
    /// Mel bins (80 or 128).
    pub n_mels: usize,
}

/// What a conversion wrote.
#[derive(Debug, Clone)]
pub struct ConvertSummary {
    /// Hyperparameters written in the header.
    pub hparams: HParams,
    /// Tensors written.
    pub tensors: usize,
    /// Tokens written.
    pub tokens: usize,
    /// Total bytes written.
    pub bytes: u64,
}

/// One output tensor: a row range of a CT2 variable under a PyTorch name.
struct Tensor<'m> {
    name: String,
    var: &'m Variable,
    scale: Option<&'m Variable>,
    row_start: usize,
    row_end: usize,
}

impl Tensor<'_> {
    /// Shape after the reference's `np.squeeze` and the conv-bias reshape.
    fn out_shape(&self) -> Vec<usize> {
        let mut shape = self.var.dims.clone();
        if let Some(first) = shape.first_mut() {
            *first = self.row_end - self.row_start;
        }
        // Dequantizing divides by `scale.reshape(-1, 1)`, which lifts a vector to 2-D.
        if self.scale.is_some() && shape.len() < 2 {
            shape.insert(0, 1);
        }
        shape.retain(|&d| d != 1);
        if self.name == "encoder.conv1.bias" || self.name == "encoder.conv2.bias" {
            let n = shape.first().copied().unwrap_or(1);
            shape = vec![n, 1];
        }
        shape
    }

    fn is_f16(&self, n_dims: usize) -> bool {
        !(n_dims < 2
            || matches!(
                self.name.as_str(),
                "encoder.conv1.bias"
                    | "encoder.conv2.bias"
                    | "encoder.positional_embedding"
                    | "decoder.positional_embedding"
            ))
    }
}

/// Streams dequantized rows of variables out of the model file.
struct RowReader<'a> {
    file: File,
    path: &'a Path,
    raw: Vec<u8>,
}

impl RowReader<'_> {
    fn read_raw(&mut self, offset: u64, len: usize) -> Result<&[u8], Ct2Error> {
        let io = |source| Ct2Error::Io {
            path: self.path.to_owned(),
            source,
        };
        self.raw.resize(len, 0);
        self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
        self.file.read_exact(&mut self.raw).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Ct2Error::Truncated {
                    path: self.path.to_owned(),
                    what: "variable data".to_owned(),
                }
            } else {
                io(e)
            }
        })?;
        Ok(&self.raw)
    }

    /// Whole variable as f32, without dequantization (biases, scales).
    fn all_f32(&mut self, var: &Variable) -> Result<Vec<f32>, Ct2Error> {
        let size = var.dtype.size();
        let raw = self.read_raw(var.offset, var.elements() * size)?;
        Ok(raw
            .chunks_exact(size)
            .map(|b| var.dtype.decode(b))
            .collect())
    }

    /// Rows `rows` of `var`, dequantized exactly like the reference:
    /// `w.astype(float32) / scale.reshape(-1, 1)`.
    fn rows(
        &mut self,
        var: &Variable,
        scale: Option<&[f32]>,
        rows: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), Ct2Error> {
        let size = var.dtype.size();
        let row_len = var.row_len();
        let offset = var.offset + (rows.start * row_len * size) as u64;
        let dtype = var.dtype;
        let raw = self.read_raw(offset, rows.len() * row_len * size)?;
        out.clear();
        out.reserve(rows.len() * row_len);
        if row_len == 0 {
            return Ok(());
        }
        for (i, row) in raw.chunks_exact(row_len * size).enumerate() {
            let s = scale.map(|s| {
                if s.len() == 1 {
                    s[0]
                } else {
                    s[rows.start + i]
                }
            });
            for b in row.chunks_exact(size) {
                let v = dtype.decode(b);
                out.push(match s {
                    Some(s) => v / s,
                    None => v,
                });
            }
        }
        Ok(())
    }
}

fn expect_rank<'v>(
    var: &'v Variable,
    rank: usize,
    expected: &'static str,
) -> Result<&'v Variable, Ct2Error> {
    if var.dims.len() == rank {
        Ok(var)
    } else {
        Err(Ct2Error::Shape {
            variable: var.name.clone(),
            expected,
            actual: var.dims.clone(),
        })
    }
}

/// Counts `layer_N` blocks under `side/`; they must be numbered 0..n.
fn count_layers(model: &Ct2Model, side: &str) -> usize {
    let prefix = format!("{side}/layer_");
    model
        .variables
        .iter()
        .filter_map(|v| v.name.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (num, tail) = rest.split_once('/')?;
            (!num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) && !tail.is_empty())
                .then_some(num)
        })
        .collect::<HashSet<_>>()
        .len()
}

/// Parses a tiktoken file into token byte strings, file order, first
/// occurrence kept (the reference builds a dict keyed by the bytes).
fn parse_tiktoken(text: &[u8], file: &'static str) -> Result<Vec<Vec<u8>>, Ct2Error> {
    let mut seen = HashSet::new();
    let mut tokens = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let err = |reason| Ct2Error::Tiktoken {
            file,
            line: i + 1,
            reason,
        };
        let mut parts = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|p| !p.is_empty());
        let (tok, rank) = match (parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(r), None) => (t, r),
            _ => return Err(err("expected `<base64> <rank>`")),
        };
        if !rank.iter().all(u8::is_ascii_digit) {
            return Err(err("rank is not an integer"));
        }
        let bytes = b64decode_lenient(tok).ok_or_else(|| err("token is not valid base64"))?;
        if seen.insert(bytes.clone()) {
            tokens.push(bytes);
        }
    }
    Ok(tokens)
}

/// Base64 decoding as Python's non-strict `base64.b64decode`: characters
/// outside the alphabet are skipped and decoding stops at padding. The real
/// `multilingual.tiktoken` relies on this: its last token is a bare `=`,
/// which decodes to the empty string.
fn b64decode_lenient(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits, mut count) = (0u32, 0u32, 0usize);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        count += 1;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // One leftover character carries fewer than 8 bits: Python rejects it.
    (count % 4 != 1).then_some(out)
}

fn w32<W: Write>(out: &mut W, v: usize) -> Result<(), Ct2Error> {
    // The ggml header stores C ints; every Whisper dimension fits.
    let v = i32::try_from(v).map_err(|_| {
        Ct2Error::Write(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "value does not fit a ggml i32 header field",
        ))
    })?;
    out.write_all(&v.to_le_bytes()).map_err(Ct2Error::Write)
}

/// The `weight_scale` variable of a quantized weight, checked for shape.
fn scale_of<'m>(model: &'m Ct2Model, v: &Variable) -> Result<Option<&'m Variable>, Ct2Error> {
    if !v.dtype.is_quantized() {
        return Ok(None);
    }
    let scale_name = v.name.replace("/weight", "/weight_scale");
    let s = model.variable(&scale_name)?;
    if s.elements() != 1 && s.elements() != v.rows() {
        return Err(Ct2Error::Shape {
            variable: scale_name,
            expected: "one scale per row or a single scale",
            actual: s.dims.clone(),
        });
    }
    Ok(Some(s))
}

/// Output tensor `name` made of rows `r` of `v`.
fn tensor_rows<'m>(
    model: &'m Ct2Model,
    name: String,
    v: &'m Variable,
    r: std::ops::Range<usize>,
) -> Result<Tensor<'m>, Ct2Error> {
    Ok(Tensor {
        name,
        scale: scale_of(model, v)?,
        var: v,
        row_start: r.start,
        row_end: r.end,
    })
}

/// How the converter stores the weight matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlWeights {
    /// f16, as openai's reference converter writes them (`ftype` 1).
    F16,
    /// ggml q8_0 for every 2-D f16 matrix: blocks of 32 values along a row,
    /// each an f16 scale (the block's largest magnitude / 127) and 32
    /// signed bytes, as whisper.cpp's `quantize` makes from the f16 file
    /// (`ftype` 2007: quantization version 2, mostly-q8_0). The values are
    /// rounded to f16 first, so the result is that of quantizing the f16
    /// file. Convolutions, biases and positional embeddings stay as in f16.
    Q8_0,
}

/// ggml's q8_0 block length.
pub(crate) const Q8_0_BLOCK: usize = 32;

/// ggml's type id of q8_0 in a tensor header.
pub(crate) const GGML_TYPE_Q8_0: usize = 8;

/// Appends `row` (a whole number of blocks) to `out` as q8_0 blocks, as
/// ggml's `quantize_row_q8_0_ref`: d = amax / 127, q = round(x / d).
pub(crate) fn quantize_q8_0(row: &[f32], out: &mut Vec<u8>) {
    for block in row.chunks(Q8_0_BLOCK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        // |x * id| <= 127 by construction, so the cast cannot saturate.
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
}

/// Converts `model` to a whisper.cpp ggml file written to `out`, with f16 or
/// q8_0 weight matrices.
///
/// `out` should be buffered; data is written in chunks of about 1 Mi elements.
pub fn convert_to_ggml<W: Write>(
    model: &Ct2Model,
    assets: &WhisperAssets,
    weights: GgmlWeights,
    mut out: W,
) -> Result<ConvertSummary, Ct2Error> {
    if model.spec != "WhisperSpec" {
        return Err(Ct2Error::Spec {
            path: model.path.clone(),
            spec: model.spec.clone(),
        });
    }
    let io = |source| Ct2Error::Io {
        path: model.path.clone(),
        source,
    };
    let mut reader = RowReader {
        file: File::open(&model.path).map_err(io)?,
        path: &model.path,
        raw: Vec::new(),
    };
    let var = |n: &str| model.variable(n);
    let whole = |name: String, n: &str| -> Result<Tensor<'_>, Ct2Error> {
        let v = var(n)?;
        tensor_rows(model, name, v, 0..v.rows())
    };
    let rows = |name: String, v, r| tensor_rows(model, name, v, r);

    let mut tensors: Vec<Tensor<'_>> = Vec::new();
    let mut zero_checks: Vec<(&Variable, std::ops::Range<usize>)> = Vec::new();
    let mut n_layers = [0usize; 2];
    for (side_i, side) in ["encoder", "decoder"].into_iter().enumerate() {
        let n_layer = count_layers(model, side);
        n_layers[side_i] = n_layer;
        for i in 0..n_layer {
            let l = format!("{side}/layer_{i}");
            let b = format!("{side}.blocks.{i}");
            let qkv_w = expect_rank(
                var(&format!("{l}/self_attention/linear_0/weight"))?,
                2,
                "[3*d, d]",
            )?;
            let qkv_b = var(&format!("{l}/self_attention/linear_0/bias"))?;
            let d = qkv_w.dims[1];
            if qkv_w.dims[0] != 3 * d || qkv_b.elements() != 3 * d {
                return Err(Ct2Error::Shape {
                    variable: qkv_w.name.clone(),
                    expected: "[3*d, d] with a 3*d bias",
                    actual: qkv_w.dims.clone(),
                });
            }
            tensors.push(rows(format!("{b}.attn.query.weight"), qkv_w, 0..d)?);
            tensors.push(rows(format!("{b}.attn.query.bias"), qkv_b, 0..d)?);
            tensors.push(rows(format!("{b}.attn.key.weight"), qkv_w, d..2 * d)?);
            zero_checks.push((qkv_b, d..2 * d));
            tensors.push(rows(format!("{b}.attn.value.weight"), qkv_w, 2 * d..3 * d)?);
            tensors.push(rows(format!("{b}.attn.value.bias"), qkv_b, 2 * d..3 * d)?);
            let sa = format!("{l}/self_attention");
            tensors.push(whole(
                format!("{b}.attn.out.weight"),
                &format!("{sa}/linear_1/weight"),
            )?);
            tensors.push(whole(
                format!("{b}.attn.out.bias"),
                &format!("{sa}/linear_1/bias"),
            )?);
            tensors.push(whole(
                format!("{b}.attn_ln.weight"),
                &format!("{sa}/layer_norm/gamma"),
            )?);
            tensors.push(whole(
                format!("{b}.attn_ln.bias"),
                &format!("{sa}/layer_norm/beta"),
            )?);
            if side == "decoder" {
                let a = format!("{l}/attention");
                tensors.push(whole(
                    format!("{b}.cross_attn.query.weight"),
                    &format!("{a}/linear_0/weight"),
                )?);
                tensors.push(whole(
                    format!("{b}.cross_attn.query.bias"),
                    &format!("{a}/linear_0/bias"),
                )?);
                let kv_w = expect_rank(var(&format!("{a}/linear_1/weight"))?, 2, "[2*d, d]")?;
                let kv_b = var(&format!("{a}/linear_1/bias"))?;
                if kv_w.dims[0] != 2 * d || kv_b.elements() != 2 * d {
                    return Err(Ct2Error::Shape {
                        variable: kv_w.name.clone(),
                        expected: "[2*d, d] with a 2*d bias",
                        actual: kv_w.dims.clone(),
                    });
                }
                zero_checks.push((kv_b, 0..d));
                tensors.push(rows(format!("{b}.cross_attn.key.weight"), kv_w, 0..d)?);
                tensors.push(rows(
                    format!("{b}.cross_attn.value.weight"),
                    kv_w,
                    d..2 * d,
                )?);
                tensors.push(rows(format!("{b}.cross_attn.value.bias"), kv_b, d..2 * d)?);
                tensors.push(whole(
                    format!("{b}.cross_attn.out.weight"),
                    &format!("{a}/linear_2/weight"),
                )?);
                tensors.push(whole(
                    format!("{b}.cross_attn.out.bias"),
                    &format!("{a}/linear_2/bias"),
                )?);
                tensors.push(whole(
                    format!("{b}.cross_attn_ln.weight"),
                    &format!("{a}/layer_norm/gamma"),
                )?);
                tensors.push(whole(
                    format!("{b}.cross_attn_ln.bias"),
                    &format!("{a}/layer_norm/beta"),
                )?);
            }
            let f = format!("{l}/ffn");
            tensors.push(whole(
                format!("{b}.mlp.0.weight"),
                &format!("{f}/linear_0/weight"),
            )?);
            tensors.push(whole(
                format!("{b}.mlp.0.bias"),
                &format!("{f}/linear_0/bias"),
            )?);
            tensors.push(whole(
                format!("{b}.mlp.2.weight"),
                &format!("{f}/linear_1/weight"),
            )?);
            tensors.push(whole(
                format!("{b}.mlp.2.bias"),
                &format!("{f}/linear_1/bias"),
            )?);
            tensors.push(whole(
                format!("{b}.mlp_ln.weight"),
                &format!("{f}/layer_norm/gamma"),
            )?);
            tensors.push(whole(
                format!("{b}.mlp_ln.bias"),
                &format!("{f}/layer_norm/beta"),
            )?);
        }
        let names: &[(&str, &str)] = if side == "encoder" {
            &[
                ("encoder.conv1.weight", "encoder/conv1/weight"),
                ("encoder.conv1.bias", "encoder/conv1/bias"),
                ("encoder.conv2.weight", "encoder/conv2/weight"),
                ("encoder.conv2.bias", "encoder/conv2/bias"),
                (
                    "encoder.positional_embedding",
                    "encoder/position_encodings/encodings",
                ),
                ("encoder.ln_post.weight", "encoder/layer_norm/gamma"),
                ("encoder.ln_post.bias", "encoder/layer_norm/beta"),
            ]
        } else {
            &[
                (
                    "decoder.token_embedding.weight",
                    "decoder/embeddings/weight",
                ),
                (
                    "decoder.positional_embedding",
                    "decoder/position_encodings/encodings",
                ),
                ("decoder.ln.weight", "decoder/layer_norm/gamma"),
                ("decoder.ln.bias", "decoder/layer_norm/beta"),
            ]
        };
        for (to, from) in names {
            tensors.push(whole((*to).to_owned(), from)?);
        }
    }

    for (bias, range) in &zero_checks {
        let all = reader.all_f32(bias)?;
        if all[range.clone()].iter().any(|&v| v != 0.0) {
            return Err(Ct2Error::NonZeroKeyBias {
                variable: bias.name.clone(),
            });
        }
    }

    let emb = expect_rank(var("decoder/embeddings/weight")?, 2, "[n_vocab, d]")?;
    let conv1 = expect_rank(var("encoder/conv1/weight")?, 3, "[n_state, n_mels, 3]")?;
    let enc_pos = expect_rank(var("encoder/position_encodings/encodings")?, 2, "[ctx, d]")?;
    let dec_pos = expect_rank(var("decoder/position_encodings/encodings")?, 2, "[ctx, d]")?;
    let hp = HParams {
        n_vocab: emb.dims[0],
        n_audio_ctx: enc_pos.dims[0],
        n_audio_state: conv1.dims[0],
        n_audio_head: conv1.dims[0] / 64,
        n_audio_layer: n_layers[0],
        n_text_ctx: dec_pos.dims[0],
        n_text_state: emb.dims[1],
        n_text_head: emb.dims[1] / 64,
        n_text_layer: n_layers[1],
        n_mels: conv1.dims[1],
    };

    let filters = npy::read_npz_array(&assets.mel_filters_npz, &format!("mel_{}", hp.n_mels))?;
    if filters.shape.len() != 2 {
        return Err(Ct2Error::Shape {
            variable: format!("mel_filters.npz:mel_{}", hp.n_mels),
            expected: "[n_mels, n_fft_bins]",
            actual: filters.shape,
        });
    }
    let multilingual = hp.n_vocab >= 51865;
    let tokens = if multilingual {
        parse_tiktoken(&assets.multilingual_tiktoken, "multilingual.tiktoken")?
    } else {
        parse_tiktoken(&assets.gpt2_tiktoken, "gpt2.tiktoken")?
    };

    let mut out = CountingWriter {
        inner: &mut out,
        bytes: 0,
    };
    out.write_all(&GGML_MAGIC.to_le_bytes())
        .map_err(Ct2Error::Write)?;
    for v in [
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_audio_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_text_state,
        hp.n_text_head,
        hp.n_text_layer,
        hp.n_mels,
        match weights {
            GgmlWeights::F16 => 1,
            GgmlWeights::Q8_0 => 2007,
        },
        filters.shape[0],
        filters.shape[1],
    ] {
        w32(&mut out, v)?;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(filters.data.len() * 4);
    for v in &filters.data {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    out.write_all(&buf).map_err(Ct2Error::Write)?;
    w32(&mut out, tokens.len())?;
    for t in &tokens {
        w32(&mut out, t.len())?;
        out.write_all(t).map_err(Ct2Error::Write)?;
    }

    let mut vals: Vec<f32> = Vec::new();
    for t in &tensors {
        let shape = t.out_shape();
        let n_dims = shape.len();
        let f16 = t.is_f16(n_dims);
        let q8 = weights == GgmlWeights::Q8_0 && f16 && n_dims == 2;
        if q8 && shape.last().is_none_or(|d| d % Q8_0_BLOCK != 0) {
            return Err(Ct2Error::Shape {
                variable: t.name.clone(),
                expected: "rows a whole number of 32-value q8_0 blocks",
                actual: shape.clone(),
            });
        }
        w32(&mut out, n_dims)?;
        w32(&mut out, t.name.len())?;
        w32(&mut out, if q8 { GGML_TYPE_Q8_0 } else { usize::from(f16) })?;
        for d in shape.iter().rev() {
            w32(&mut out, *d)?;
        }
        out.write_all(t.name.as_bytes()).map_err(Ct2Error::Write)?;
        let scale = match t.scale {
            Some(s) => Some(reader.all_f32(s)?),
            None => None,
        };
        let row_len = t.var.row_len().max(1);
        let step = (CHUNK_ELEMENTS / row_len).max(1);
        let mut r = t.row_start;
        while r < t.row_end {
            let end = (r + step).min(t.row_end);
            reader.rows(t.var, scale.as_deref(), r..end, &mut vals)?;
            buf.clear();
            if q8 {
                let rounded: Vec<f32> = vals
                    .iter()
                    .map(|v| half::f16::from_f32(*v).to_f32())
                    .collect();
                quantize_q8_0(&rounded, &mut buf);
            } else if f16 {
                for v in &vals {
                    buf.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
                }
            } else {
                for v in &vals {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
            }
            out.write_all(&buf).map_err(Ct2Error::Write)?;
            r = end;
        }
    }
    out.flush().map_err(Ct2Error::Write)?;
    Ok(ConvertSummary {
        hparams: hp,
        tensors: tensors.len(),
        tokens: tokens.len(),
        bytes: out.bytes,
    })
}

/// Counts bytes on their way to the real writer.
struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::npy::tests::{npy_f4, npz};

    /// One synthetic variable: name, dims, dtype id, raw little-endian data.
    pub(crate) type Var = (String, Vec<usize>, u8, Vec<u8>);

    fn f32s(dims: &[usize], seed: f32) -> Vec<u8> {
        let n: usize = dims.iter().product();
        (0..n)
            .flat_map(|i| (seed + i as f32 * 0.125).to_le_bytes())
            .collect()
    }

    fn var(name: &str, dims: &[usize], seed: f32) -> Var {
        (name.to_owned(), dims.to_vec(), 0, f32s(dims, seed))
    }

    /// Serialises variables in CTranslate2 binary version 6 layout.
    pub(crate) fn ct2_bytes(version: u32, spec: &str, vars: &[Var]) -> Vec<u8> {
        fn s(out: &mut Vec<u8>, t: &str) {
            out.extend_from_slice(&((t.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
            out.push(0);
        }
        let mut out = version.to_le_bytes().to_vec();
        s(&mut out, spec);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for (name, dims, dtype, data) in vars {
            s(&mut out, name);
            out.push(dims.len() as u8);
            for d in dims {
                out.extend_from_slice(&(*d as u32).to_le_bytes());
            }
            out.push(*dtype);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&1u32.to_le_bytes());
        s(&mut out, "decoder/projection/weight");
        s(&mut out, "decoder/embeddings/weight");
        out
    }

    /// A complete tiny Whisper: d=4, 2 mels, 3-token vocab, one layer each side.
    /// The decoder embedding is int8 with per-row scales.
    pub(crate) fn tiny_whisper() -> Vec<Var> {
        let d = 4;
        let mut v = Vec::new();
        let mut seed = 0.5f32;
        let mut next = || {
            seed += 1.0;
            seed
        };
        for side in ["encoder", "decoder"] {
            let l = format!("{side}/layer_0");
            let mut qkv_b = f32s(&[3 * d], next());
            qkv_b[d * 4..2 * d * 4].fill(0); // key bias must be zero
            v.push(var(
                &format!("{l}/self_attention/linear_0/weight"),
                &[3 * d, d],
                next(),
            ));
            v.push((
                format!("{l}/self_attention/linear_0/bias"),
                vec![3 * d],
                0,
                qkv_b,
            ));
            v.push(var(
                &format!("{l}/self_attention/linear_1/weight"),
                &[d, d],
                next(),
            ));
            v.push(var(
                &format!("{l}/self_attention/linear_1/bias"),
                &[d],
                next(),
            ));
            v.push(var(
                &format!("{l}/self_attention/layer_norm/gamma"),
                &[d],
                next(),
            ));
            v.push(var(
                &format!("{l}/self_attention/layer_norm/beta"),
                &[d],
                next(),
            ));
            if side == "decoder" {
                let a = format!("{l}/attention");
                let mut kv_b = f32s(&[2 * d], next());
                kv_b[..d * 4].fill(0);
                v.push(var(&format!("{a}/linear_0/weight"), &[d, d], next()));
                v.push(var(&format!("{a}/linear_0/bias"), &[d], next()));
                v.push(var(&format!("{a}/linear_1/weight"), &[2 * d, d], next()));
                v.push((format!("{a}/linear_1/bias"), vec![2 * d], 0, kv_b));
                v.push(var(&format!("{a}/linear_2/weight"), &[d, d], next()));
                v.push(var(&format!("{a}/linear_2/bias"), &[d], next()));
                v.push(var(&format!("{a}/layer_norm/gamma"), &[d], next()));
                v.push(var(&format!("{a}/layer_norm/beta"), &[d], next()));
            }
            v.push(var(&format!("{l}/ffn/linear_0/weight"), &[8, d], next()));
            v.push(var(&format!("{l}/ffn/linear_0/bias"), &[8], next()));
            v.push(var(&format!("{l}/ffn/linear_1/weight"), &[d, 8], next()));
            v.push(var(&format!("{l}/ffn/linear_1/bias"), &[d], next()));
            v.push(var(&format!("{l}/ffn/layer_norm/gamma"), &[d], next()));
            v.push(var(&format!("{l}/ffn/layer_norm/beta"), &[d], next()));
        }
        v.push(var("encoder/conv1/weight", &[d, 2, 3], 1.0));
        v.push(var("encoder/conv1/bias", &[d], 2.0));
        v.push(var("encoder/conv2/weight", &[d, d, 3], 3.0));
        v.push(var("encoder/conv2/bias", &[d], 4.0));
        v.push(var("encoder/position_encodings/encodings", &[5, d], 5.0));
        v.push(var("encoder/layer_norm/gamma", &[d], 6.0));
        v.push(var("encoder/layer_norm/beta", &[d], 7.0));
        let emb: Vec<u8> = (0..3 * d).map(|i| (i as i8 - 6) as u8).collect();
        v.push(("decoder/embeddings/weight".to_owned(), vec![3, d], 1, emb));
        let scales: Vec<u8> = [2.0f32, 4.0, 0.5]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        v.push((
            "decoder/embeddings/weight_scale".to_owned(),
            vec![3],
            0,
            scales,
        ));
        v.push(var("decoder/position_encodings/encodings", &[3, d], 8.0));
        v.push(var("decoder/layer_norm/gamma", &[d], 9.0));
        v.push(var("decoder/layer_norm/beta", &[d], 10.0));
        v
    }

    pub(crate) fn tiny_assets() -> WhisperAssets {
        WhisperAssets {
            mel_filters_npz: npz(&[("mel_2", npy_f4(&[2, 3], &[0.5, 1.0, 1.5, 2.0, 2.5, 3.0]))]),
            multilingual_tiktoken: Vec::new(),
            // Includes a duplicate and the bare `=` that the real file ends with.
            gpt2_tiktoken: b"IQ== 0\nIg== 1\nIQ== 2\n= 3\n".to_vec(),
        }
    }

    fn write_model(dir: &Path, bytes: &[u8]) -> PathBuf {
        let p = dir.join("model.bin");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Reads a ggml file back: header ints, tokens, and tensors by name.
    struct Ggml {
        header: Vec<i32>,
        tokens: Vec<Vec<u8>>,
        tensors: Vec<(String, Vec<usize>, i32, Vec<u8>)>,
    }

    fn read_ggml(b: &[u8]) -> Ggml {
        let mut pos = 0;
        let mut int = || {
            let v = i32::from_le_bytes(b[pos..pos + 4].try_into().unwrap());
            pos += 4;
            v
        };
        let header: Vec<i32> = (0..14).map(|_| int()).collect();
        let mut pos = 14 * 4 + (header[12] * header[13]) as usize * 4;
        let int_at = |pos: &mut usize| {
            let v = i32::from_le_bytes(b[*pos..*pos + 4].try_into().unwrap());
            *pos += 4;
            v
        };
        let n_tokens = int_at(&mut pos);
        let mut tokens = Vec::new();
        for _ in 0..n_tokens {
            let n = int_at(&mut pos) as usize;
            tokens.push(b[pos..pos + n].to_vec());
            pos += n;
        }
        let mut tensors = Vec::new();
        while pos < b.len() {
            let n_dims = int_at(&mut pos) as usize;
            let name_len = int_at(&mut pos) as usize;
            let ftype = int_at(&mut pos);
            let mut dims: Vec<usize> = (0..n_dims).map(|_| int_at(&mut pos) as usize).collect();
            dims.reverse();
            let name = String::from_utf8(b[pos..pos + name_len].to_vec()).unwrap();
            pos += name_len;
            let n: usize = dims.iter().product::<usize>() * if ftype == 1 { 2 } else { 4 };
            tensors.push((name, dims, ftype, b[pos..pos + n].to_vec()));
            pos += n;
        }
        Ggml {
            header,
            tokens,
            tensors,
        }
    }

    #[test]
    fn q8_0_blocks_match_ggml_reference_quantization() {
        let mut row: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        row.extend([0.0; 32]);
        let mut out = Vec::new();
        quantize_q8_0(&row, &mut out);
        assert_eq!(out.len(), 2 * 34);
        // Block 1: amax 16, d = 16/127, q = round(x * 127/16).
        let d = half::f16::from_le_bytes([out[0], out[1]]).to_f32();
        assert!((d - 16.0 / 127.0).abs() < 1e-4, "{d}");
        assert_eq!(out[2] as i8, -127);
        assert_eq!(out[2 + 16] as i8, 0);
        assert_eq!(out[2 + 17] as i8, 8); // 1 * 7.9375 = 7.94 -> 8
        assert_eq!(out[2 + 31] as i8, 119); // 15 * 7.9375 = 119.06
                                            // Block 2: all zero, scale 0, no division by zero.
        assert_eq!(&out[34..], &[0u8; 34][..]);
        // Dequantized values are within half a step of the input.
        for (i, x) in row[..32].iter().enumerate() {
            let q = f32::from(out[2 + i] as i8) * d;
            assert!((q - x).abs() <= d / 2.0 + 1e-3, "{i}: {q} vs {x}");
        }
    }

    #[test]
    fn q8_0_refuses_rows_that_are_not_whole_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_model(dir.path(), &ct2_bytes(6, "WhisperSpec", &tiny_whisper()));
        let m = Ct2Model::open(&p).unwrap();
        let err = convert_to_ggml(&m, &tiny_assets(), GgmlWeights::Q8_0, Vec::new())
            .expect_err("rows of 4 values cannot be q8_0");
        let text = err.to_string();
        assert!(matches!(err, Ct2Error::Shape { .. }), "{text}");
        assert!(text.contains("q8_0"), "{text}");
    }

    #[test]
    fn parses_the_variable_index_and_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_model(dir.path(), &ct2_bytes(6, "WhisperSpec", &tiny_whisper()));
        let m = Ct2Model::open(&p).unwrap();
        assert_eq!(
            (m.version, m.spec.as_str(), m.revision),
            (6, "WhisperSpec", 3)
        );
        let emb = m.variable("decoder/embeddings/weight").unwrap();
        assert_eq!((emb.dims.clone(), emb.dtype), (vec![3, 4], DType::I8));
        assert_eq!(m.aliases.len(), 1);
        assert!(matches!(
            m.variable("nope"),
            Err(Ct2Error::MissingVariable { .. })
        ));
    }

    #[test]
    fn converts_a_tiny_model_with_dequantization_and_pytorch_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_model(dir.path(), &ct2_bytes(6, "WhisperSpec", &tiny_whisper()));
        let m = Ct2Model::open(&p).unwrap();
        let mut out = Vec::new();
        let s = convert_to_ggml(&m, &tiny_assets(), GgmlWeights::F16, &mut out).unwrap();
        assert_eq!(s.bytes, out.len() as u64);
        assert_eq!(s.tensors, 50);
        let g = read_ggml(&out);
        assert_eq!(g.header[0], GGML_MAGIC);
        // n_vocab, audio ctx/state/head/layer, text ctx/state/head/layer, mels, ftype, filter dims
        assert_eq!(&g.header[1..], &[3, 5, 4, 0, 1, 3, 4, 0, 1, 2, 1, 2, 3]);
        assert_eq!(g.tokens, vec![b"!".to_vec(), b"\"".to_vec(), Vec::new()]);
        assert_eq!(g.tensors.len(), 50);
        assert_eq!(g.tensors[0].0, "encoder.blocks.0.attn.query.weight");
        let find = |n: &str| g.tensors.iter().find(|t| t.0 == n).unwrap();

        let emb = find("decoder.token_embedding.weight");
        assert_eq!((emb.1.clone(), emb.2), (vec![3, 4], 1));
        let vals: Vec<f32> = emb
            .3
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        // int8 value / per-row scale: rows scaled by 2, 4 and 0.5.
        assert_eq!(vals[0], -6.0 / 2.0);
        assert_eq!(vals[5], -1.0 / 4.0);
        assert_eq!(vals[11], 5.0 / 0.5);

        let bias = find("encoder.conv1.bias");
        assert_eq!((bias.1.clone(), bias.2), (vec![4, 1], 0));
        assert_eq!(find("encoder.positional_embedding").2, 0);
        assert_eq!(find("decoder.ln.bias").2, 0);
        let key = find("decoder.blocks.0.cross_attn.key.weight");
        assert_eq!((key.1.clone(), key.2), (vec![4, 4], 1));
    }

    #[test]
    fn non_zero_key_bias_is_refused() {
        let mut vars = tiny_whisper();
        let b = vars
            .iter_mut()
            .find(|v| v.0 == "encoder/layer_0/self_attention/linear_0/bias")
            .unwrap();
        b.3[4 * 4..4 * 4 + 4].copy_from_slice(&1.0f32.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let p = write_model(dir.path(), &ct2_bytes(6, "WhisperSpec", &vars));
        let err = convert_to_ggml(
            &Ct2Model::open(&p).unwrap(),
            &tiny_assets(),
            GgmlWeights::F16,
            Vec::new(),
        );
        assert!(
            matches!(err, Err(Ct2Error::NonZeroKeyBias { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn bad_files_give_specific_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = ct2_bytes(6, "WhisperSpec", &tiny_whisper());
        let p = write_model(dir.path(), &good[..good.len() / 2]);
        assert!(matches!(
            Ct2Model::open(&p),
            Err(Ct2Error::Truncated { .. })
        ));
        let p = write_model(dir.path(), &ct2_bytes(4, "WhisperSpec", &tiny_whisper()));
        assert!(matches!(
            Ct2Model::open(&p),
            Err(Ct2Error::Version { version: 4, .. })
        ));
        let mut odd = tiny_whisper();
        odd[0].2 = 9;
        let p = write_model(dir.path(), &ct2_bytes(6, "WhisperSpec", &odd));
        assert!(matches!(
            Ct2Model::open(&p),
            Err(Ct2Error::Dtype { dtype: 9, .. })
        ));
        let mut short = tiny_whisper();
        short[0].3.truncate(4);
        let p = write_model(dir.path(), &ct2_bytes(6, "WhisperSpec", &short));
        assert!(matches!(
            Ct2Model::open(&p),
            Err(Ct2Error::VariableSize { .. })
        ));
        let p = write_model(
            dir.path(),
            &ct2_bytes(6, "TransformerSpec", &tiny_whisper()),
        );
        let m = Ct2Model::open(&p).unwrap();
        assert!(matches!(
            convert_to_ggml(&m, &tiny_assets(), GgmlWeights::F16, Vec::new()),
            Err(Ct2Error::Spec { .. })
        ));
        let mut missing = tiny_whisper();
        missing.retain(|v| v.0 != "decoder/embeddings/weight_scale");
        let p = write_model(dir.path(), &ct2_bytes(6, "WhisperSpec", &missing));
        let m = Ct2Model::open(&p).unwrap();
        assert!(matches!(
            convert_to_ggml(&m, &tiny_assets(), GgmlWeights::F16, Vec::new()),
            Err(Ct2Error::MissingVariable { variable }) if variable == "decoder/embeddings/weight_scale"
        ));
    }

    #[test]
    fn base64_decoding_matches_pythons_lenient_decoder() {
        assert_eq!(b64decode_lenient(b"SGk=").unwrap(), b"Hi");
        assert_eq!(b64decode_lenient(b"=").unwrap(), b"");
        assert_eq!(b64decode_lenient(b"SGVsbG8").unwrap(), b"Hello");
        assert!(b64decode_lenient(b"SGVsb").is_none());
        assert!(matches!(
            parse_tiktoken(b"IQ==\n", "t"),
            Err(Ct2Error::Tiktoken { line: 1, .. })
        ));
    }
}
