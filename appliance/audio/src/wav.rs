//! WAV files in and out. Reading accepts what integrators and TTS engines
//! actually produce (mono 8/16/24/32-bit integer or 32-bit float PCM at the
//! usual rates) and refuses everything else with a message that says how
//! to fix the file. Writing is always 16-bit PCM.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, Write};
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

use crate::pcm::f32_to_i16;
use crate::{AudioError, Pcm};

/// Sample rates [`read`] accepts.
pub const SUPPORTED_RATES: [u32; 7] = [8000, 16000, 22050, 24000, 32000, 44100, 48000];

/// Longest file [`read`] accepts: 10 minutes. Longer recordings are not
/// something the box ever needs to load whole, and the check runs on the
/// header so a corrupt length cannot trigger a huge allocation.
pub const MAX_DURATION_MS: u64 = 10 * 60 * 1000;

/// Reads a mono WAV file into f32 samples at its own rate.
pub fn read(path: impl AsRef<Path>) -> Result<Pcm, AudioError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| AudioError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let mut head = [0u8; 12];
    let got = read_up_to(&mut reader, &mut head).map_err(|source| AudioError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    // Sniffing here (not inside hound) lets the error say what the file is.
    check_riff(&head[..got], path)?;
    reader
        .seek(std::io::SeekFrom::Start(0))
        .map_err(|source| AudioError::Io {
            file: path.to_path_buf(),
            source,
        })?;
    decode(reader, path)
}

/// Reads a mono WAV from memory (embedded prompts, test fixtures); `name`
/// stands in for the file name in errors.
pub fn read_bytes(bytes: &[u8], name: &str) -> Result<Pcm, AudioError> {
    let path = Path::new(name);
    check_riff(&bytes[..bytes.len().min(12)], path)?;
    decode(Cursor::new(bytes), path)
}

/// Writes `pcm` as a 16-bit PCM mono WAV file, clipping to [-1, 1].
pub fn write(path: impl AsRef<Path>, pcm: &Pcm) -> Result<(), AudioError> {
    let path = path.as_ref();
    let file = File::create(path).map_err(|source| AudioError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    encode(std::io::BufWriter::new(file), pcm, path)
}

/// Writes `pcm` as a 16-bit PCM mono WAV into any seekable writer (hound
/// patches the header lengths at the end, hence `Seek`).
pub fn write_to<W: Write + Seek>(out: W, pcm: &Pcm) -> Result<(), AudioError> {
    encode(out, pcm, Path::new("<memory>"))
}

/// Encodes `pcm` into a new in-memory WAV file.
pub fn to_bytes(pcm: &Pcm) -> Result<Vec<u8>, AudioError> {
    let mut cursor = Cursor::new(Vec::new());
    write_to(&mut cursor, pcm)?;
    Ok(cursor.into_inner())
}

fn encode<W: Write + Seek>(out: W, pcm: &Pcm, path: &Path) -> Result<(), AudioError> {
    let werr = |source| AudioError::Write {
        file: path.to_path_buf(),
        source,
    };
    if pcm.rate == 0 {
        return Err(AudioError::InvalidRate {
            rate: 0,
            max: crate::resample::MAX_RATE,
        });
    }
    let spec = WavSpec {
        channels: 1,
        sample_rate: pcm.rate,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    let mut writer = WavWriter::new(out, spec).map_err(werr)?;
    {
        let mut w16 = writer.get_i16_writer(pcm.samples.len() as u32);
        for &s in &pcm.samples {
            w16.write_sample(f32_to_i16(s));
        }
        w16.flush().map_err(werr)?;
    }
    writer.finalize().map_err(werr)
}

fn decode<R: Read>(source: R, path: &Path) -> Result<Pcm, AudioError> {
    let file = || path.to_path_buf();
    let mut reader = WavReader::new(source).map_err(|e| map_open_error(e, path))?;
    let spec = reader.spec();
    if spec.channels != 1 {
        return Err(AudioError::NotMono {
            file: file(),
            channels: spec.channels,
        });
    }
    if !SUPPORTED_RATES.contains(&spec.sample_rate) {
        return Err(AudioError::UnsupportedRate {
            file: file(),
            rate: spec.sample_rate,
        });
    }
    let expected = reader.len();
    if expected == 0 {
        return Err(AudioError::Empty { file: file() });
    }
    let duration_ms = u64::from(expected) * 1000 / u64::from(spec.sample_rate);
    if duration_ms > MAX_DURATION_MS {
        return Err(AudioError::TooLong {
            file: file(),
            duration_ms,
            limit_ms: MAX_DURATION_MS,
        });
    }

    let mut samples = Vec::with_capacity(expected as usize);
    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Float, 32) => {
            for s in reader.samples::<f32>() {
                samples.push(s.map_err(|e| sample_error(e, path, expected, samples.len()))?);
            }
        }
        (SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            for s in reader.samples::<i32>() {
                let v = s.map_err(|e| sample_error(e, path, expected, samples.len()))?;
                samples.push((f64::from(v) * scale) as f32);
            }
        }
        (format, bits) => {
            return Err(AudioError::UnsupportedFormat {
                file: file(),
                bits,
                format: match format {
                    SampleFormat::Float => "float",
                    SampleFormat::Int => "integer",
                },
            })
        }
    }
    // hound stops at the count from the header; a short read is an error
    // above, so reaching here means every announced sample was present.
    Ok(Pcm::new(spec.sample_rate, samples))
}

/// An error while iterating samples: a short read means the data chunk is
/// shorter than its header says.
fn sample_error(e: hound::Error, path: &Path, expected: u32, found: usize) -> AudioError {
    match e {
        hound::Error::IoError(_) => AudioError::Truncated {
            file: path.to_path_buf(),
            expected,
            found: found as u32,
        },
        other => AudioError::Malformed {
            file: path.to_path_buf(),
            source: other,
        },
    }
}

fn map_open_error(e: hound::Error, path: &Path) -> AudioError {
    match e {
        // The header itself ends early: a file cut off before any sample.
        hound::Error::IoError(source) => AudioError::Io {
            file: path.to_path_buf(),
            source,
        },
        other => AudioError::Malformed {
            file: path.to_path_buf(),
            source: other,
        },
    }
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn check_riff(head: &[u8], path: &Path) -> Result<(), AudioError> {
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        return Ok(());
    }
    Err(AudioError::NotWav {
        file: PathBuf::from(path),
        found: describe_head(head),
    })
}

/// Names the common things people pass instead of a WAV.
fn describe_head(head: &[u8]) -> String {
    let kind = if head.is_empty() {
        return "nothing: the file is empty".to_string();
    } else if head.starts_with(b"RIFF") {
        "a RIFF container that is not WAVE"
    } else if head.starts_with(b"RIFX") || head.starts_with(b"RF64") {
        "a big-endian or 64-bit WAV variant, which is not supported"
    } else if head.starts_with(b"fLaC") {
        "FLAC audio"
    } else if head.starts_with(b"OggS") {
        "Ogg (Vorbis/Opus) audio"
    } else if head.starts_with(b"ID3")
        || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0)
    {
        "MP3 audio"
    } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
        "MP4/M4A audio"
    } else if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "text"
    } else {
        "unknown data"
    };
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = head
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{} \"{}\", which looks like {kind}", hex.join(" "), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_bytes(spec: WavSpec, n: usize) -> Vec<u8> {
        let mut c = Cursor::new(Vec::new());
        let mut w = WavWriter::new(&mut c, spec).unwrap();
        for i in 0..n {
            match spec.sample_format {
                SampleFormat::Float => w.write_sample((i as f32 / n as f32) - 0.5).unwrap(),
                SampleFormat::Int => {
                    let max = (1i64 << (spec.bits_per_sample - 1)) - 1;
                    let v = (max as f64 * ((i as f64 / n as f64) - 0.5)) as i32;
                    w.write_sample(v).unwrap()
                }
            }
        }
        w.finalize().unwrap();
        c.into_inner()
    }

    fn spec(rate: u32, bits: u16, format: SampleFormat, channels: u16) -> WavSpec {
        WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn reads_every_supported_encoding_to_the_same_ramp() {
        for (bits, format) in [
            (8, SampleFormat::Int),
            (16, SampleFormat::Int),
            (24, SampleFormat::Int),
            (32, SampleFormat::Int),
            (32, SampleFormat::Float),
        ] {
            let bytes = wav_bytes(spec(16000, bits, format, 1), 1000);
            let pcm = read_bytes(&bytes, "ramp.wav").unwrap();
            assert_eq!((pcm.rate, pcm.len()), (16000, 1000));
            for (i, &s) in pcm.samples.iter().enumerate() {
                let want = i as f32 / 1000.0 - 0.5;
                // The ramp was quantised to `bits`: allow two steps.
                let tol = 2.0 / (1u64 << (bits - 1)) as f32 + 1e-6;
                assert!(
                    (s - want).abs() < tol,
                    "{bits}-bit {format:?} sample {i}: {s} vs {want}"
                );
            }
        }
    }

    #[test]
    fn write_then_read_round_trips_and_clips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wav");
        let pcm = Pcm::new(8000, vec![0.0, 0.5, -0.25, 1.5, -3.0]);
        write(&path, &pcm).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.rate, 8000);
        assert_eq!(back.to_i16(), vec![0, 16384, -8192, 32767, -32768]);
        assert_eq!(to_bytes(&pcm).unwrap(), std::fs::read(&path).unwrap());
    }

    #[test]
    fn every_supported_rate_is_accepted() {
        for rate in SUPPORTED_RATES {
            let pcm = read_bytes(&to_bytes(&Pcm::silence(rate, 10)).unwrap(), "r.wav").unwrap();
            assert_eq!(pcm.rate, rate);
        }
    }

    #[test]
    fn truncated_data_chunk_is_an_error_not_a_short_read() {
        let mut bytes = wav_bytes(spec(16000, 16, SampleFormat::Int, 1), 1000);
        bytes.truncate(bytes.len() - 501); // 250.5 samples missing
        let err = read_bytes(&bytes, "cut.wav").unwrap_err();
        assert!(
            matches!(
                err,
                AudioError::Truncated {
                    expected: 1000,
                    found: 749,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("cut.wav") && msg.contains("1000") && msg.contains("749"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_file_on_disk_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.wav");
        let mut bytes = wav_bytes(spec(8000, 16, SampleFormat::Int, 1), 800);
        bytes.truncate(bytes.len() - 100);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            read(&path),
            Err(AudioError::Truncated {
                expected: 800,
                found: 750,
                ..
            })
        ));
    }

    #[test]
    fn stereo_is_refused_with_the_fix() {
        let bytes = wav_bytes(spec(16000, 16, SampleFormat::Int, 2), 100);
        let msg = read_bytes(&bytes, "st.wav").unwrap_err().to_string();
        assert!(
            msg.contains("st.wav: has 2 channels; VoiceBlock needs mono: sox in.wav -c 1 out.wav"),
            "{msg}"
        );
    }

    #[test]
    fn unsupported_rate_lists_the_supported_ones() {
        let bytes = wav_bytes(spec(11025, 16, SampleFormat::Int, 1), 100);
        let err = read_bytes(&bytes, "odd.wav").unwrap_err();
        assert!(matches!(
            err,
            AudioError::UnsupportedRate { rate: 11025, .. }
        ));
        let msg = err.to_string();
        assert!(
            msg.contains("8000, 16000, 22050, 24000, 32000, 44100, 48000 Hz"),
            "{msg}"
        );
    }

    #[test]
    fn empty_and_too_long_are_refused() {
        let bytes = wav_bytes(spec(8000, 16, SampleFormat::Int, 1), 0);
        assert!(matches!(
            read_bytes(&bytes, "e.wav"),
            Err(AudioError::Empty { .. })
        ));

        // Forge a header announcing 11 minutes; the limit must trip before
        // any allocation or read of that size.
        let mut bytes = wav_bytes(spec(8000, 16, SampleFormat::Int, 1), 10);
        let n = 8000u32 * 660 * 2;
        let data_at = bytes.windows(4).position(|w| w == b"data").unwrap();
        bytes[data_at + 4..data_at + 8].copy_from_slice(&n.to_le_bytes());
        let err = read_bytes(&bytes, "long.wav").unwrap_err();
        assert!(
            matches!(
                err,
                AudioError::TooLong {
                    duration_ms: 660_000,
                    limit_ms: 600_000,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn not_a_wav_says_what_it_looks_like() {
        let msg = read_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x21", "song.mp3")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("song.mp3: not a WAV file") && msg.contains("MP3"),
            "{msg}"
        );
        let msg = read_bytes(b"hello world, this is text", "notes.wav")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("\"hello world,\"") && msg.contains("text"),
            "{msg}"
        );
        let msg = read_bytes(b"", "zero.wav").unwrap_err().to_string();
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let msg = read("/nonexistent/dir/x.wav").unwrap_err().to_string();
        assert!(msg.starts_with("/nonexistent/dir/x.wav: "), "{msg}");
    }

    #[test]
    fn garbage_after_riff_header_is_malformed_not_a_panic() {
        let mut bytes = b"RIFF\x24\x00\x00\x00WAVE".to_vec();
        bytes.extend_from_slice(&[0xAB; 40]);
        let err = read_bytes(&bytes, "junk.wav").unwrap_err();
        assert!(
            matches!(err, AudioError::Malformed { .. } | AudioError::Io { .. }),
            "{err:?}"
        );
    }
}
