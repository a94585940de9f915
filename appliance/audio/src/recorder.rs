//! Call recording: the caller and the robot as the left and right channels
//! of one 8 kHz 16-bit stereo WAV, written while the call goes on.
//!
//! The two sides arrive on different threads (the listener reads the
//! caller's frames, the line's sender takes the robot's), so each side is a
//! [`RecorderTap`] that hands 20 ms frames to the recorder's own writer
//! thread over a bounded channel. Full policy: the frame is dropped and
//! counted; a tap never waits, so a slow disk cannot stall the line's
//! clock. The writer pairs the sides frame by frame; a side that falls more
//! than a second behind (a transport that sends nothing while the robot is
//! quiet) is filled with silence. Writing stops at the recording's length
//! limit or at the first write error (a full disk); the call goes on either
//! way and [`CallRecorder::finish`] says what happened.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hound::{SampleFormat, WavSpec, WavWriter};

use crate::{AudioError, Frame8k};

/// Recording rate: the line's.
pub const RECORDING_RATE: u32 = 8_000;
/// Frames queued to the writer thread (both sides), about 5 s of call.
const QUEUED_FRAMES: usize = 256;
/// Frames one side may run ahead before the other is taken as silent: 1 s.
const MAX_SKEW_FRAMES: usize = 50;
/// How long [`CallRecorder::finish`] waits for the writer to drain.
const FINISH_WAIT: Duration = Duration::from_secs(10);

/// Which channel a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Left: what the caller said.
    Caller,
    /// Right: what the robot said.
    Robot,
}

enum Msg {
    Frame(Side, Box<[i16; 160]>),
    Stop,
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The WAV file.
    pub path: PathBuf,
    /// Channels (2: caller left, robot right).
    pub channels: u16,
    /// Sample rate.
    pub sample_rate: u32,
    /// Length, ms.
    pub duration_ms: u64,
    /// File size.
    pub bytes: u64,
    /// Whether the length limit cut it short.
    pub truncated: bool,
    /// Frames the writer could not keep up with (dropped, heard as gaps).
    pub dropped_frames: u64,
}

/// One side's way into the recorder; cheap to clone, never blocks.
#[derive(Clone)]
pub struct RecorderTap {
    side: Side,
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for RecorderTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderTap")
            .field("side", &self.side)
            .finish()
    }
}

impl RecorderTap {
    /// Hands one 20 ms frame to the writer; dropped (and counted) when the
    /// writer is behind, ignored once the recording has finished.
    pub fn frame(&self, frame: &Frame8k) {
        if let Err(mpsc::TrySendError::Full(_)) =
            self.tx.try_send(Msg::Frame(self.side, Box::new(frame.0)))
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A call being recorded.
pub struct CallRecorder {
    path: PathBuf,
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<Result<Written, AudioError>>>>,
}

impl std::fmt::Debug for CallRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecorder")
            .field("path", &self.path)
            .finish()
    }
}

struct Written {
    frames: u64,
    truncated: bool,
}

impl CallRecorder {
    /// Creates `path` (which must not exist) and starts the writer thread.
    /// At most `max` of call is written.
    pub fn create(path: &Path, max: Duration) -> Result<CallRecorder, AudioError> {
        let io = |source| AudioError::Io {
            file: path.to_path_buf(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        Self::start(path, file, max)
    }

    fn start(path: &Path, file: File, max: Duration) -> Result<CallRecorder, AudioError> {
        let io = |source| AudioError::Io {
            file: path.to_path_buf(),
            source,
        };
        let spec = WavSpec {
            channels: 2,
            sample_rate: RECORDING_RATE,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        let wav = WavWriter::new(BufWriter::with_capacity(64 * 1024, file), spec).map_err(|e| {
            AudioError::Recording {
                file: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        let (tx, rx) = mpsc::sync_channel(QUEUED_FRAMES);
        let max_frames = max.as_millis() as u64 / crate::FRAME_MS as u64;
        let file = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("vb-recorder".into())
            .spawn(move || write(rx, wav, max_frames, &file))
            .map_err(io)?;
        Ok(CallRecorder {
            path: path.to_path_buf(),
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// The way in for one side.
    pub fn tap(&self, side: Side) -> RecorderTap {
        RecorderTap {
            side,
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
        }
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ends the recording: the writer drains what is queued, pairs the
    /// sides up with silence and closes the file. Taps are ignored after
    /// this. A write error (a full disk) comes back here, with the file
    /// removed.
    pub fn finish(&self) -> Result<Recording, AudioError> {
        let Some(writer) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Err(self.fail("the recording was already finished"));
        };
        // Blocks while the queue is full: the writer is draining it.
        let _ = self.tx.send(Msg::Stop);
        let until = std::time::Instant::now() + FINISH_WAIT;
        while !writer.is_finished() {
            if std::time::Instant::now() >= until {
                return Err(self.fail(&format!(
                    "the writer did not finish within {} s",
                    FINISH_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let written = match writer.join() {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => {
                let _ = std::fs::remove_file(&self.path);
                return Err(e);
            }
            Err(_) => return Err(self.fail("the writer thread panicked")),
        };
        let bytes = std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|source| AudioError::Io {
                file: self.path.clone(),
                source,
            })?;
        Ok(Recording {
            path: self.path.clone(),
            channels: 2,
            sample_rate: RECORDING_RATE,
            duration_ms: written.frames * crate::FRAME_MS as u64,
            bytes,
            truncated: written.truncated,
            dropped_frames: self.dropped.load(Ordering::Relaxed),
        })
    }

    fn fail(&self, message: &str) -> AudioError {
        AudioError::Recording {
            file: self.path.clone(),
            message: message.to_string(),
        }
    }
}

impl Drop for CallRecorder {
    /// A recorder dropped without [`CallRecorder::finish`] (the call failed)
    /// still closes its file, so it stays a valid WAV.
    fn drop(&mut self) {
        if let Some(writer) = self
            .writer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = self.tx.try_send(Msg::Stop);
            drop(writer);
        }
    }
}

/// The writer thread: pairs caller and robot frames into stereo samples.
fn write(
    rx: Receiver<Msg>,
    mut wav: WavWriter<BufWriter<File>>,
    max_frames: u64,
    file: &Path,
) -> Result<Written, AudioError> {
    let wav_err = |e: hound::Error| AudioError::Recording {
        file: file.to_path_buf(),
        message: format!("writing the call recording: {e}"),
    };
    let mut caller: VecDeque<Box<[i16; 160]>> = VecDeque::new();
    let mut robot: VecDeque<Box<[i16; 160]>> = VecDeque::new();
    let mut frames = 0u64;
    let mut truncated = false;
    let silence = [0i16; 160];
    let mut stopping = false;
    loop {
        match rx.recv() {
            Ok(Msg::Frame(Side::Caller, f)) => caller.push_back(f),
            Ok(Msg::Frame(Side::Robot, f)) => robot.push_back(f),
            Ok(Msg::Stop) | Err(_) => stopping = true,
        }
        // Pair what both sides have; a side more than a second ahead (or
        // everything, at the end) goes out against silence.
        loop {
            let pair = match (caller.front(), robot.front()) {
                (Some(_), Some(_)) => (caller.pop_front(), robot.pop_front()),
                (Some(_), None) if stopping || caller.len() > MAX_SKEW_FRAMES => {
                    (caller.pop_front(), None)
                }
                (None, Some(_)) if stopping || robot.len() > MAX_SKEW_FRAMES => {
                    (None, robot.pop_front())
                }
                _ => break,
            };
            if frames >= max_frames {
                truncated = true;
                caller.clear();
                robot.clear();
                break;
            }
            let left = pair.0.as_deref().unwrap_or(&silence);
            let right = pair.1.as_deref().unwrap_or(&silence);
            for (l, r) in left.iter().zip(right.iter()) {
                wav.write_sample(*l).map_err(wav_err)?;
                wav.write_sample(*r).map_err(wav_err)?;
            }
            frames += 1;
        }
        if stopping {
            break;
        }
    }
    wav.finalize().map_err(wav_err)?;
    Ok(Written { frames, truncated })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Frame;

    fn frame(v: i16) -> Frame8k {
        Frame([v; 160])
    }

    fn read(path: &Path) -> (hound::WavSpec, Vec<i16>) {
        let r = hound::WavReader::open(path).unwrap();
        let spec = r.spec();
        (spec, r.into_samples::<i16>().map(Result::unwrap).collect())
    }

    #[test]
    fn caller_left_robot_right_paired_frame_by_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let rec = CallRecorder::create(&path, Duration::from_secs(60)).unwrap();
        let (c, r) = (rec.tap(Side::Caller), rec.tap(Side::Robot));
        for i in 0..10 {
            c.frame(&frame(i));
            r.frame(&frame(1000 + i));
        }
        let done = rec.finish().unwrap();
        assert_eq!(done.duration_ms, 200);
        assert_eq!((done.channels, done.sample_rate), (2, 8000));
        assert!(!done.truncated);
        let (spec, samples) = read(&path);
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(samples.len(), 10 * 160 * 2);
        assert_eq!(done.bytes, std::fs::metadata(&path).unwrap().len());
        for (i, chunk) in samples.chunks(320).enumerate() {
            assert!(chunk.iter().step_by(2).all(|&s| s == i as i16));
            assert!(chunk
                .iter()
                .skip(1)
                .step_by(2)
                .all(|&s| s == 1000 + i as i16));
        }
    }

    #[test]
    fn a_quiet_side_is_filled_with_silence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.wav");
        let rec = CallRecorder::create(&path, Duration::from_secs(60)).unwrap();
        let c = rec.tap(Side::Caller);
        // 3 s of caller and no robot frames at all (a transport that only
        // sends while the robot talks).
        for _ in 0..150 {
            c.frame(&frame(7));
            std::thread::sleep(Duration::from_micros(100));
        }
        let done = rec.finish().unwrap();
        assert_eq!(done.duration_ms, 3000 - done.dropped_frames * 20);
        let (_, samples) = read(&path);
        assert!(samples.iter().step_by(2).all(|&s| s == 7));
        assert!(samples.iter().skip(1).step_by(2).all(|&s| s == 0));
    }

    #[test]
    fn length_limit_truncates_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.wav");
        let rec = CallRecorder::create(&path, Duration::from_millis(100)).unwrap();
        let (c, r) = (rec.tap(Side::Caller), rec.tap(Side::Robot));
        for _ in 0..20 {
            c.frame(&frame(1));
            r.frame(&frame(2));
        }
        let done = rec.finish().unwrap();
        assert_eq!(done.duration_ms, 100);
        assert!(done.truncated);
        assert_eq!(read(&path).1.len(), 5 * 320);
        // Taps after the end are ignored, and a second finish says so.
        c.frame(&frame(1));
        assert!(rec.finish().is_err());
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.wav");
        std::fs::write(&path, b"kept").unwrap();
        let err = CallRecorder::create(&path, Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("d.wav"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
    }

    #[test]
    fn a_full_disk_is_reported_and_the_partial_file_removed() {
        // /dev/full fails every write with ENOSPC, as a full SD card does.
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.wav");
        std::fs::write(&path, b"partial").unwrap();
        let rec = CallRecorder::start(&path, full, Duration::from_secs(60)).unwrap();
        let c = rec.tap(Side::Caller);
        for _ in 0..40 {
            c.frame(&frame(3));
        }
        let err = rec.finish().unwrap_err().to_string();
        assert!(err.contains("writing the call recording"), "{err}");
        assert!(!path.exists(), "the partial recording is removed");
    }
}
