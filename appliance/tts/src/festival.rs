//! Festival voices (`text2wave`), run as a subprocess: a second Russian voice
//! from Debian (`festvox-ru`, a unit-selection voice recorded from a real
//! speaker) that whisper recognises far better than espeak-ng's formant voice.
//!
//! It starts a process per sentence (about 0.7 s of CPU to load the voice),
//! so it is a caller voice for simulations and tests, not the robot's
//! real-time voice.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vb_audio::{wav, Pcm};

use crate::error::TtsError;
use crate::Synthesizer;

/// The Festival voice Debian's `festvox-ru` installs.
pub const RUSSIAN_VOICE: &str = "msu_ru_nsh_clunits";

/// Longest a sentence may take before the process is killed.
const TIMEOUT: Duration = Duration::from_secs(30);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A Festival voice used through `text2wave`.
#[derive(Debug, Clone)]
pub struct FestivalVoice {
    program: String,
    voice: String,
    name: String,
}

impl FestivalVoice {
    /// The Festival voice `voice` (e.g. [`RUSSIAN_VOICE`]); fails if
    /// `text2wave` is not on the PATH.
    pub fn new(voice: &str) -> Result<Self, TtsError> {
        let program = "text2wave".to_string();
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|d| d.join(&program).is_file()))
            .unwrap_or(false);
        if !found {
            return Err(TtsError::FestivalMissing {
                program,
                voice: voice.to_string(),
            });
        }
        Ok(FestivalVoice {
            program,
            voice: voice.to_string(),
            name: format!("festival-{voice}"),
        })
    }

    /// The Russian voice from `festvox-ru`.
    pub fn russian() -> Result<Self, TtsError> {
        Self::new(RUSSIAN_VOICE)
    }

    fn failed(&self, reason: String) -> TtsError {
        TtsError::FestivalFailed {
            voice: self.voice.clone(),
            reason,
        }
    }
}

impl Synthesizer for FestivalVoice {
    fn synthesize(&mut self, text: &str) -> Result<Pcm, TtsError> {
        if !text.chars().any(char::is_alphanumeric) {
            return Err(TtsError::EmptyText);
        }
        let out = std::env::temp_dir().join(format!(
            "voiceblock-festival-{}-{}.wav",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.run(text, &out);
        let _ = std::fs::remove_file(&out);
        result
    }

    fn sample_rate(&self) -> u32 {
        16_000
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl FestivalVoice {
    fn run(&self, text: &str, out: &PathBuf) -> Result<Pcm, TtsError> {
        let mut child = Command::new(&self.program)
            .arg("-eval")
            .arg(format!("(voice_{})", self.voice))
            .arg("-o")
            .arg(out)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.failed(format!("could not start {}: {e}", self.program)))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| self.failed(format!("writing the text: {e}")))?;
        }
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() > TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.failed(format!("no audio after {} s", TIMEOUT.as_secs())));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(self.failed(format!("waiting for it: {e}"))),
            }
        };
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        if !status.success() {
            return Err(self.failed(format!("{status}: {}", stderr.trim())));
        }
        wav::read(out)
            .map_err(|e| self.failed(format!("its output: {e}; stderr: {}", stderr.trim())))
    }
}
