//! [`Metrics`]: the counters, gauges and histograms the daemon updates as
//! calls run, rendered in the OpenMetrics text format at `GET /metrics`.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Distinct `result` labels kept for `calls_total`; further values are
/// counted as `other`, so a buggy caller cannot grow the exposition forever.
pub const MAX_RESULTS: usize = 16;

/// A stage of one turn whose latency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Caller stopped speaking -> endpoint decided.
    Endpoint,
    /// Speech-to-text of the utterance.
    Stt,
    /// Request sent -> first LLM token.
    LlmFirstToken,
    /// Text ready -> first synthesized audio.
    TtsFirstAudio,
    /// Endpoint -> first robot audio on the wire (what the caller feels).
    Wire,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::Endpoint,
        Stage::Stt,
        Stage::LlmFirstToken,
        Stage::TtsFirstAudio,
        Stage::Wire,
    ];

    /// The `stage` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Endpoint => "endpoint",
            Stage::Stt => "stt",
            Stage::LlmFirstToken => "llm_first_token",
            Stage::TtsFirstAudio => "tts_first_audio",
            Stage::Wire => "wire",
        }
    }
}

type Labels = [(&'static str, String); 1];
type StageLabels = [(&'static str, &'static str); 1];

fn latency_histogram() -> Histogram {
    // 10 ms .. ~20 s
    Histogram::new(exponential_buckets(0.01, 2.0, 12))
}

fn rtf_histogram() -> Histogram {
    // real-time factor 0.05 .. 3.2
    Histogram::new(exponential_buckets(0.05, 2.0, 7))
}

/// The daemon's metrics. Share it as `Arc<Metrics>`; every method takes
/// `&self` and only touches atomics (plus a short lock for a new `result`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: Family<Labels, Counter>,
    results_seen: Mutex<Vec<String>>,
    active_calls: Gauge,
    turn_latency: Family<StageLabels, Histogram, fn() -> Histogram>,
    stt_rtf: Histogram,
    tts_rtf: Histogram,
    barge_ins: Counter,
    script_fallbacks: Counter,
    sip_registered: Gauge,
    mqtt_connected: Gauge,
    rtp_packets_lost: Counter,
    rtp_jitter_ms: Gauge<f64, AtomicU64>,
    outbox_depth: Gauge,
    resident_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// All metrics at zero, registered under the `voiceblock_` prefix.
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("voiceblock");
        let calls = Family::<Labels, Counter>::default();
        registry.register("calls", "Calls ended, by result", calls.clone());
        let active_calls = Gauge::default();
        registry.register("active_calls", "Calls in progress", active_calls.clone());
        let turn_latency: Family<StageLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        // Every stage from the start, so a dashboard sees all five series
        // (a script robot never observes the model's first token).
        for stage in Stage::ALL {
            let _ = turn_latency.get_or_create(&[("stage", stage.as_str())]);
        }
        registry.register_with_unit(
            "turn_latency",
            "Latency of each stage of a turn",
            prometheus_client::registry::Unit::Seconds,
            turn_latency.clone(),
        );
        let stt_rtf = rtf_histogram();
        registry.register(
            "stt_rtf",
            "Speech-to-text real-time factor (processing time / audio time)",
            stt_rtf.clone(),
        );
        let tts_rtf = rtf_histogram();
        registry.register(
            "tts_rtf",
            "Text-to-speech real-time factor (synthesis time / audio time)",
            tts_rtf.clone(),
        );
        let barge_ins = Counter::default();
        registry.register(
            "barge_ins",
            "Times a caller interrupted the robot",
            barge_ins.clone(),
        );
        let script_fallbacks = Counter::default();
        registry.register(
            "script_fallbacks",
            "Turns answered by the script because the LLM was unreachable or slow",
            script_fallbacks.clone(),
        );
        let sip_registered = Gauge::default();
        registry.register(
            "sip_registered",
            "1 while registered with the SIP registrar",
            sip_registered.clone(),
        );
        let mqtt_connected = Gauge::default();
        registry.register(
            "mqtt_connected",
            "1 while connected to the MQTT broker",
            mqtt_connected.clone(),
        );
        let rtp_packets_lost = Counter::default();
        registry.register(
            "rtp_packets_lost",
            "RTP packets lost, all calls",
            rtp_packets_lost.clone(),
        );
        let rtp_jitter_ms = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "rtp_jitter_ms",
            "Interarrival jitter of the latest call, milliseconds",
            rtp_jitter_ms.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Messages in the store waiting for broker acknowledgement",
            outbox_depth.clone(),
        );
        let resident_bytes = Gauge::default();
        registry.register(
            "process_resident_bytes",
            "Resident memory of the daemon",
            resident_bytes.clone(),
        );
        Metrics {
            registry: root,
            calls,
            results_seen: Mutex::new(Vec::new()),
            active_calls,
            turn_latency,
            stt_rtf,
            tts_rtf,
            barge_ins,
            script_fallbacks,
            sip_registered,
            mqtt_connected,
            rtp_packets_lost,
            rtp_jitter_ms,
            outbox_depth,
            resident_bytes,
        }
    }

    /// A call was answered.
    pub fn call_started(&self) {
        self.active_calls.inc();
    }

    /// A call ended with `result` (its end reason: `completed`,
    /// `caller_hangup`, `max_duration`, ...).
    pub fn call_ended(&self, result: &str) {
        self.active_calls.dec();
        let label = {
            let mut seen = self.results_seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.iter().any(|r| r == result) {
                result.to_owned()
            } else if seen.len() < MAX_RESULTS {
                seen.push(result.to_owned());
                result.to_owned()
            } else {
                "other".to_owned()
            }
        };
        self.calls.get_or_create(&[("result", label)]).inc();
    }

    /// One stage of a turn took `took`.
    pub fn observe_stage(&self, stage: Stage, took: Duration) {
        self.turn_latency
            .get_or_create(&[("stage", stage.as_str())])
            .observe(took.as_secs_f64());
    }

    /// Speech-to-text real-time factor of one utterance.
    pub fn observe_stt_rtf(&self, rtf: f64) {
        self.stt_rtf.observe(rtf);
    }

    /// Text-to-speech real-time factor of one sentence.
    pub fn observe_tts_rtf(&self, rtf: f64) {
        self.tts_rtf.observe(rtf);
    }

    /// The caller interrupted the robot.
    pub fn barge_in(&self) {
        self.barge_ins.inc();
    }

    /// A turn fell back to the script dialog.
    pub fn script_fallback(&self) {
        self.script_fallbacks.inc();
    }

    /// SIP registration state changed.
    pub fn set_sip_registered(&self, registered: bool) {
        self.sip_registered.set(i64::from(registered));
    }

    /// MQTT connection state changed.
    pub fn set_mqtt_connected(&self, connected: bool) {
        self.mqtt_connected.set(i64::from(connected));
    }

    /// `lost` more RTP packets were lost.
    pub fn add_rtp_packets_lost(&self, lost: u64) {
        self.rtp_packets_lost.inc_by(lost);
    }

    /// The latest RTP interarrival jitter.
    pub fn set_rtp_jitter_ms(&self, jitter_ms: f64) {
        self.rtp_jitter_ms.set(jitter_ms);
    }

    /// Messages waiting in the outbox (the API also sets it from the store
    /// at every scrape).
    pub fn set_outbox_depth(&self, depth: u64) {
        self.outbox_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// The exposition text, with `process_resident_bytes` read now.
    pub fn render(&self) -> String {
        if let Some(rss) = crate::sys::resident_bytes() {
            self.resident_bytes
                .set(i64::try_from(rss).unwrap_or(i64::MAX));
        }
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail; the encoder's own errors are
        // fmt::Error from a writer, so there is nothing to lose here.
        if encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics: encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_every_metric_with_its_labels() {
        let m = Metrics::new();
        m.call_started();
        m.call_started();
        m.call_ended("completed");
        m.observe_stage(Stage::Stt, Duration::from_millis(250));
        m.observe_stt_rtf(0.3);
        m.barge_in();
        m.set_sip_registered(true);
        m.add_rtp_packets_lost(3);
        m.set_rtp_jitter_ms(4.5);
        let text = m.render();
        for line in [
            "voiceblock_calls_total{result=\"completed\"} 1",
            "voiceblock_active_calls 1",
            "voiceblock_turn_latency_seconds_count{stage=\"stt\"} 1",
            "voiceblock_stt_rtf_count 1",
            "voiceblock_barge_ins_total 1",
            "voiceblock_sip_registered 1",
            "voiceblock_rtp_packets_lost_total 3",
            "voiceblock_rtp_jitter_ms 4.5",
            "voiceblock_mqtt_connected 0",
            "voiceblock_script_fallbacks_total 0",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.contains("voiceblock_process_resident_bytes "));
    }

    #[test]
    fn result_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..(MAX_RESULTS + 5) {
            m.call_ended(&format!("r{i}"));
        }
        let text = m.render();
        let lines = text
            .lines()
            .filter(|l| l.starts_with("voiceblock_calls_total{"))
            .count();
        assert_eq!(lines, MAX_RESULTS + 1);
        assert!(text.contains("voiceblock_calls_total{result=\"other\"} 5"));
    }
}
