//! Opening an ALSA PCM the way the handset wants it (blocking, interleaved
//! S16, 8 kHz mono when the device takes it, 20 ms periods) and telling a
//! recoverable error (an xrun) from a lost device.

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::ValueOr;

pub use crate::error::Direction;
use crate::error::HandsetError;
use crate::framing::LINE_RATE;

/// Periods in the device buffer: 4 x 20 ms, short enough that a barge-in
/// silences the robot quickly, long enough to ride out scheduling hiccups.
const PERIODS: usize = 4;

/// An open, configured PCM.
pub struct Device {
    /// The PCM.
    pub pcm: PCM,
    /// The rate it runs at (8000 when the device takes it).
    pub rate: u32,
    /// Its channels (1 when the device takes mono).
    pub channels: usize,
    /// Frames per period (about 20 ms).
    pub period: usize,
    /// Frames in the buffer.
    pub buffer: usize,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .field("period", &self.period)
            .field("buffer", &self.buffer)
            .finish()
    }
}

/// Opens `name` for `direction`, configured and prepared (capture started).
pub fn open(name: &str, direction: Direction) -> Result<Device, HandsetError> {
    let pcm = PCM::new(name, direction.into(), false).map_err(|source| HandsetError::Open {
        device: name.to_string(),
        direction,
        source,
    })?;
    let fail = |what: &'static str| {
        move |source| HandsetError::Configure {
            device: name.to_string(),
            direction,
            what,
            source,
        }
    };
    let (rate, channels, period, buffer) = {
        let hw = HwParams::any(&pcm).map_err(fail("hardware parameters"))?;
        hw.set_access(Access::RWInterleaved)
            .map_err(fail("interleaved access"))?;
        hw.set_format(Format::s16()).map_err(fail("format S16"))?;
        // No ALSA rate conversion (the `plug` layer's is linear
        // interpolation): a device that cannot run at 8 kHz is opened at
        // its own rate and our band-limited resampler converts. Devices
        // without the setting (not `plug`) ignore it.
        let _ = hw.set_rate_resample(false);
        let channels = hw.set_channels_near(1).map_err(fail("channels"))?;
        let rate = hw
            .set_rate_near(LINE_RATE, ValueOr::Nearest)
            .map_err(fail("rate"))?;
        let period = hw
            .set_period_size_near((rate / 50) as alsa::pcm::Frames, ValueOr::Nearest)
            .map_err(fail("period size"))?;
        let buffer = hw
            .set_buffer_size_near(period * PERIODS as alsa::pcm::Frames)
            .map_err(fail("buffer size"))?;
        pcm.hw_params(&hw).map_err(fail("hardware parameters"))?;
        (rate, channels as usize, period as usize, buffer as usize)
    };
    if direction == Direction::Playback {
        // Start playing once two periods are queued rather than when the
        // whole buffer is full.
        let sw = pcm
            .sw_params_current()
            .map_err(fail("software parameters"))?;
        sw.set_start_threshold((period * 2) as alsa::pcm::Frames)
            .map_err(fail("start threshold"))?;
        pcm.sw_params(&sw).map_err(fail("software parameters"))?;
    }
    pcm.prepare().map_err(fail("prepare"))?;
    if direction == Direction::Capture {
        pcm.start().map_err(fail("start"))?;
    }
    Ok(Device {
        pcm,
        rate,
        channels: channels.max(1),
        period: period.max(1),
        buffer,
    })
}

/// What an error from `readi`/`writei`/`wait` means for the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Overrun, underrun, suspend or an interrupted call: `snd_pcm_recover`
    /// puts the stream right.
    Recoverable,
    /// The device is gone (unplugged, its server died) or broken: close it
    /// and reopen later.
    Lost,
}

/// Sorts an ALSA error code (negative or positive errno).
pub fn classify(errno: i32) -> ErrorKind {
    match errno.abs() {
        libc_errno::EPIPE | libc_errno::ESTRPIPE | libc_errno::EINTR | libc_errno::EAGAIN => {
            ErrorKind::Recoverable
        }
        _ => ErrorKind::Lost,
    }
}

/// The errno values ALSA reports, without a libc dependency of our own.
mod libc_errno {
    pub const EINTR: i32 = 4;
    pub const EAGAIN: i32 = 11;
    pub const EPIPE: i32 = 32;
    pub const ESTRPIPE: i32 = 86;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xruns_recover_and_unplugs_are_lost() {
        assert_eq!(classify(-32), ErrorKind::Recoverable, "EPIPE: xrun");
        assert_eq!(classify(-86), ErrorKind::Recoverable, "ESTRPIPE: suspend");
        assert_eq!(classify(4), ErrorKind::Recoverable, "EINTR");
        assert_eq!(classify(-19), ErrorKind::Lost, "ENODEV: unplugged");
        assert_eq!(classify(-77), ErrorKind::Lost, "EBADFD");
        assert_eq!(classify(-5), ErrorKind::Lost, "EIO");
    }

    #[test]
    fn a_missing_device_is_an_open_error_naming_it() {
        let err = open("vb_no_such_device", Direction::Capture).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, HandsetError::Open { .. }), "{text}");
        assert!(
            text.contains("vb_no_such_device") && text.contains("capture"),
            "{text}"
        );
    }
}
