//! Structural check of a ggml whisper model file before whisper.cpp loads it.
//! whisper.cpp accepts a file cut short (it reads past the end as zeros and
//! even treats a header-only file as "an empty model for testing"), which
//! would decode garbage: walking the layout here turns that into an error.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::SttError;

/// ggml's file magic 0x67676d6c as whisper.cpp writes it (little-endian).
pub const GGML_MAGIC: [u8; 4] = *b"lmgg";

/// What the walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLayout {
    /// Vocabulary size.
    pub n_vocab: u32,
    /// Encoder layers.
    pub n_audio_layer: u32,
    /// Decoder layers.
    pub n_text_layer: u32,
    /// Tensors in the file.
    pub tensors: u32,
}

impl ModelLayout {
    /// Tensors a whisper model with these layer counts has: 7 encoder globals,
    /// 15 per encoder layer, 4 decoder globals, 24 per decoder layer.
    pub fn expected_tensors(&self) -> u64 {
        11 + 15 * u64::from(self.n_audio_layer) + 24 * u64::from(self.n_text_layer)
    }
}

/// Elements per block and bytes per block of the ggml tensor types whisper
/// models ship in; None for types this check does not know.
fn type_block(ttype: i32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (1, 4),      // f32
        1 => (1, 2),      // f16
        2 => (32, 18),    // q4_0
        3 => (32, 20),    // q4_1
        6 => (32, 22),    // q5_0
        7 => (32, 24),    // q5_1
        8 => (32, 34),    // q8_0
        9 => (32, 36),    // q8_1
        10 => (256, 84),  // q2_k
        11 => (256, 110), // q3_k
        12 => (256, 144), // q4_k
        13 => (256, 176), // q5_k
        14 => (256, 210), // q6_k
        15 => (256, 292), // q8_k
        30 => (1, 2),     // bf16
        _ => return None,
    })
}

struct Walker {
    path: PathBuf,
    file: BufReader<File>,
    offset: u64,
    len: u64,
}

impl Walker {
    fn corrupt(&self, what: &'static str) -> SttError {
        SttError::ModelCorrupt {
            path: self.path.clone(),
            offset: self.offset,
            what,
        }
    }

    fn truncated(&self, needed: u64) -> SttError {
        SttError::ModelTruncated {
            path: self.path.clone(),
            needed_bytes: needed,
            file_bytes: self.len,
        }
    }

    fn skip(&mut self, bytes: u64) -> Result<(), SttError> {
        let end = self
            .offset
            .checked_add(bytes)
            .ok_or_else(|| self.corrupt("size overflow"))?;
        if end > self.len {
            return Err(self.truncated(end));
        }
        let step = i64::try_from(bytes).map_err(|_| self.corrupt("size overflow"))?;
        self.file
            .seek_relative(step)
            .map_err(|source| SttError::ModelUnreadable {
                path: self.path.clone(),
                source,
            })?;
        self.offset = end;
        Ok(())
    }

    fn i32(&mut self) -> Result<i32, SttError> {
        if self.offset + 4 > self.len {
            return Err(self.truncated(self.offset + 4));
        }
        let mut b = [0; 4];
        self.file
            .read_exact(&mut b)
            .map_err(|source| SttError::ModelUnreadable {
                path: self.path.clone(),
                source,
            })?;
        self.offset += 4;
        Ok(i32::from_le_bytes(b))
    }

    fn count(&mut self, what: &'static str) -> Result<u64, SttError> {
        let v = self.i32()?;
        u64::try_from(v).map_err(|_| self.corrupt(what))
    }
}

/// Walks a ggml whisper file: magic, hyper-parameters, mel filters,
/// vocabulary, then every tensor's header and data, and requires the file to
/// end exactly after the last tensor with the tensor count the layers imply.
pub fn check_model_file(path: &Path) -> Result<ModelLayout, SttError> {
    let unreadable = |source| SttError::ModelUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => SttError::ModelMissing {
            path: path.to_path_buf(),
        },
        _ => unreadable(source),
    })?;
    let len = file.metadata().map_err(unreadable)?.len();
    let mut w = Walker {
        path: path.to_path_buf(),
        file: BufReader::new(file),
        offset: 0,
        len,
    };

    let mut head = Vec::with_capacity(4);
    w.file
        .by_ref()
        .take(4)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    if head != GGML_MAGIC {
        return Err(SttError::ModelNotGgml {
            path: path.to_path_buf(),
            found: head,
        });
    }
    w.offset = 4;

    // n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
    // n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
    let mut hp = [0u64; 11];
    for v in &mut hp {
        *v = w.count("negative hyper-parameter")?;
    }
    let layout_layers = |v: u64| u32::try_from(v).ok().filter(|n| (1..=64).contains(n));
    let (Some(n_audio_layer), Some(n_text_layer)) = (layout_layers(hp[4]), layout_layers(hp[8]))
    else {
        return Err(w.corrupt("layer count outside 1..=64"));
    };

    let n_mel = w.count("negative mel filter count")?;
    let n_fft = w.count("negative mel filter size")?;
    w.skip(n_mel.saturating_mul(n_fft).saturating_mul(4))?;

    let n_vocab = w.count("negative vocabulary size")?;
    for _ in 0..n_vocab {
        let len = w.count("negative token length")?;
        w.skip(len)?;
    }

    let mut tensors = 0u32;
    while w.offset < w.len {
        let n_dims = w.count("negative tensor rank")?;
        if !(1..=4).contains(&n_dims) {
            return Err(w.corrupt("tensor rank outside 1..=4"));
        }
        let name_len = w.count("negative tensor name length")?;
        let ttype = w.i32()?;
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            let ne = w.count("negative tensor dimension")?;
            elements = elements
                .checked_mul(ne)
                .ok_or_else(|| w.corrupt("tensor size overflow"))?;
        }
        w.skip(name_len)?;
        let (block, block_bytes) =
            type_block(ttype).ok_or_else(|| w.corrupt("unknown tensor type"))?;
        w.skip(elements.div_ceil(block).saturating_mul(block_bytes))?;
        tensors += 1;
    }

    let layout = ModelLayout {
        n_vocab: u32::try_from(n_vocab).unwrap_or(u32::MAX),
        n_audio_layer,
        n_text_layer,
        tensors,
    };
    if u64::from(tensors) != layout.expected_tensors() {
        return Err(SttError::ModelIncomplete {
            path: path.to_path_buf(),
            tensors,
            expected: layout.expected_tensors(),
        });
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(vals: &[i32]) -> Vec<u8> {
        vals.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// A structurally valid miniature model: 1 encoder and 1 decoder layer,
    /// so 50 one-element f32 tensors.
    fn mini_model() -> Vec<u8> {
        let mut f = GGML_MAGIC.to_vec();
        f.extend(le(&[3, 1500, 4, 1, 1, 448, 4, 1, 1, 80, 0])); // hparams
        f.extend(le(&[1, 2])); // mel filters 1 x 2
        f.extend(le(&[0, 0]).iter().take(8)); // two f32 zeros
        f.extend(le(&[3])); // vocab
        for tok in ["a", "bb", "c"] {
            f.extend(le(&[tok.len() as i32]));
            f.extend(tok.as_bytes());
        }
        for i in 0..50 {
            let name = format!("t{i}");
            f.extend(le(&[1, name.len() as i32, 0, 1]));
            f.extend(name.as_bytes());
            f.extend(1.0f32.to_le_bytes());
        }
        f
    }

    fn check_bytes(bytes: &[u8]) -> Result<ModelLayout, SttError> {
        let dir = std::env::temp_dir().join(format!("vb-stt-ggml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(format!("m-{}.bin", bytes.len()));
        std::fs::write(&path, bytes).expect("write");
        let result = check_model_file(&path);
        std::fs::remove_file(&path).ok();
        result
    }

    #[test]
    fn a_complete_file_passes() {
        let layout = check_bytes(&mini_model()).expect("valid");
        assert_eq!(layout.tensors, 50);
        assert_eq!(layout.n_vocab, 3);
    }

    #[test]
    fn every_truncation_is_caught() {
        let full = mini_model();
        for cut in 0..full.len() {
            let err = check_bytes(&full[..cut]).expect_err("truncated file must fail");
            assert!(
                matches!(
                    err,
                    SttError::ModelNotGgml { .. }
                        | SttError::ModelTruncated { .. }
                        | SttError::ModelIncomplete { .. }
                ),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn nonsense_headers_are_corrupt() {
        let mut bad_layers = mini_model();
        bad_layers[4 + 4 * 4..4 + 5 * 4].copy_from_slice(&1000i32.to_le_bytes());
        assert!(matches!(
            check_bytes(&bad_layers),
            Err(SttError::ModelCorrupt { .. })
        ));
        let mut negative = mini_model();
        negative[4..8].copy_from_slice(&(-1i32).to_le_bytes());
        assert!(matches!(
            check_bytes(&negative),
            Err(SttError::ModelCorrupt { .. })
        ));
    }

    #[test]
    fn tensor_counts_follow_the_layers() {
        let tiny = ModelLayout {
            n_vocab: 51864,
            n_audio_layer: 4,
            n_text_layer: 4,
            tensors: 0,
        };
        assert_eq!(tiny.expected_tensors(), 167);
        let base = ModelLayout {
            n_vocab: 51865,
            n_audio_layer: 6,
            n_text_layer: 6,
            tensors: 0,
        };
        assert_eq!(base.expected_tensors(), 245);
    }
}
