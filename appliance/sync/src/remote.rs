//! Config pushes and commands from the fleet: explicit size limits, strict
//! parsing, and the replies. Pure: the agent does the I/O, the daemon's
//! [`Device`] does the work.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Largest config push accepted (bytes of the MQTT payload).
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Largest command accepted.
pub const MAX_COMMAND_BYTES: usize = 4 * 1024;
/// Most log lines one `logs` command may ask for.
pub const MAX_LOG_LINES: u32 = 1000;

/// What the daemon exposes to the fleet. Implementations must leave the
/// device unchanged when they return an error.
pub trait Device: Send + Sync + 'static {
    /// Validates `config` and applies it. On `Err` (every validation problem,
    /// one per entry) the config in force stays as it was.
    fn apply_config(&self, version: u64, config: &Value) -> Result<(), Vec<String>>;
    /// Re-reads configuration and robots from disk. The default refuses: a
    /// device that cannot reload says so instead of pretending.
    fn reload(&self) -> Result<Value, String> {
        Err("reload is not available here".into())
    }
    /// The last `lines` log lines, oldest first (default: none kept).
    fn recent_logs(&self, lines: usize) -> Result<Vec<String>, String> {
        let _ = lines;
        Ok(Vec::new())
    }
    /// Starts (`true`) or stops the outbound call queue. The default refuses:
    /// there is no queue.
    fn outbound_queue(&self, run: bool) -> Result<Value, String> {
        let _ = run;
        Err("no outbound queue here".into())
    }
    /// Health and versions for the retained status message (default: none).
    fn health(&self) -> Value {
        serde_json::Value::Null
    }
    /// Daemon metrics (calls, turn latency percentiles, real-time factors;
    /// default: none).
    fn metrics(&self) -> Value {
        serde_json::Value::Null
    }
    /// The folder robot updates are installed into (`robots/<name>`); `None`
    /// (the default) refuses robot updates.
    fn robots_dir(&self) -> Option<PathBuf> {
        None
    }
    /// Validates a pushed robot unpacked in `dir` (a staging folder, not yet
    /// in use) before it is swapped in; on `Err` (every problem) the robot in
    /// force stays. The default runs vb-dialog's robot loader.
    fn validate_robot(&self, name: &str, dir: &Path) -> Result<Value, Vec<String>> {
        let _ = name;
        crate::robot_update::validate_with_loader(dir)
    }
    /// Called after a pushed robot was swapped in at `dir` (the previous one
    /// is at `<name>.prev`): the daemon takes it into use (e.g. reloads). On
    /// `Err` the previous folder is put back and the push is refused. The
    /// default does nothing: the new folder is used from the next load.
    fn robot_installed(&self, name: &str, dir: &Path) -> Result<Value, String> {
        let _ = (name, dir);
        Ok(Value::Null)
    }
    /// Places a test call to `target` (a phone number or SIP URI, already
    /// checked by [`parse_command`]) and returns what the daemon can say
    /// about it (e.g. the call id). The default refuses: a box without
    /// telephony (the standalone sync agent) cannot call.
    fn place_test_call(&self, target: &str) -> Result<Value, String> {
        let _ = target;
        Err("test calls are not available here: this process has no telephony".into())
    }
}

/// Longest test-call target.
pub const MAX_TARGET_LEN: usize = 128;

/// Checks a test-call target: a phone number (`+15551234567`, `101`) or a
/// SIP URI (`sip:101@pbx.local;transport=tcp`), 1-128 characters from the
/// set those use; never whitespace or control characters.
pub fn check_target(target: &str) -> Result<(), String> {
    if target.is_empty() || target.len() > MAX_TARGET_LEN {
        return Err(format!(
            "test_call: target is {} characters, allowed 1-{MAX_TARGET_LEN}",
            target.len()
        ));
    }
    if let Some(c) = target
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+@:._;=-*#".contains(*c)))
    {
        return Err(format!(
            "test_call: target {target:?} holds {c:?}; use a phone number or a SIP URI"
        ));
    }
    Ok(())
}

/// A config push as sent on `config/desired`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredConfig {
    /// Version chosen by the fleet; must grow.
    pub version: u64,
    /// The config (its shape is the daemon's business).
    pub config: Value,
}

/// Parses a config push, or says every reason it is refused.
pub fn parse_desired(payload: &[u8]) -> Result<DesiredConfig, Vec<String>> {
    if payload.len() > MAX_CONFIG_BYTES {
        return Err(vec![format!(
            "config push is {} bytes, the limit is {MAX_CONFIG_BYTES}",
            payload.len()
        )]);
    }
    let d: DesiredConfig = serde_json::from_slice(payload).map_err(|e| {
        vec![format!(
            "config push is not valid JSON {{\"version\": N, \"config\": {{...}}}}: {e}"
        )]
    })?;
    if d.version == 0 {
        return Err(vec!["version must be 1 or more".into()]);
    }
    if !d.config.is_object() {
        return Err(vec!["config must be a JSON object".into()]);
    }
    Ok(d)
}

/// What the box does with a config push given the version in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigDecision {
    /// Apply it.
    Apply,
    /// Already in force (a retained push seen again after a reconnect).
    Unchanged,
    /// Older than the one in force.
    Stale {
        /// The version in force.
        current: u64,
    },
}

/// Compares a push's version with the one in force.
pub fn decide(version: u64, current: Option<u64>) -> ConfigDecision {
    match current {
        Some(c) if version == c => ConfigDecision::Unchanged,
        Some(c) if version < c => ConfigDecision::Stale { current: c },
        _ => ConfigDecision::Apply,
    }
}

/// The retained report on `config/reported`.
pub fn reported(applied: Option<u64>, requested: Option<u64>, errors: &[String]) -> Value {
    json!({
        "status": if errors.is_empty() { "applied" } else { "rejected" },
        "version": applied,
        "requested_version": requested,
        "errors": errors,
    })
}

/// A command from the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceCommand {
    /// Re-read config and robots. (A struct variant so that unknown fields
    /// are refused: serde lets them through on unit variants.)
    Reload {},
    /// Fetch the last `lines` log lines (1-1000).
    Logs {
        /// How many.
        lines: u32,
    },
    /// Start or stop the outbound call queue.
    Outbound {
        /// `start` or `stop`.
        action: OutboundAction,
    },
    /// Place a test call to `target` (phone number or SIP URI).
    TestCall {
        /// Whom to call.
        target: String,
    },
}

/// `start` or `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundAction {
    /// Start dialling.
    Start,
    /// Stop dialling.
    Stop,
}

/// Parses and checks a command; the error is the reply's explanation.
pub fn parse_command(payload: &[u8]) -> Result<DeviceCommand, String> {
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(format!(
            "command is {} bytes, the limit is {MAX_COMMAND_BYTES}",
            payload.len()
        ));
    }
    let cmd: DeviceCommand = serde_json::from_slice(payload).map_err(|e| {
        format!("bad command: {e} (commands: {{\"command\":\"reload\"}}, {{\"command\":\"logs\",\"lines\":N}}, {{\"command\":\"outbound\",\"action\":\"start|stop\"}}, {{\"command\":\"test_call\",\"target\":\"+15551234567|sip:101@pbx\"}})")
    })?;
    match &cmd {
        DeviceCommand::Logs { lines } if *lines == 0 || *lines > MAX_LOG_LINES => {
            return Err(format!("logs: lines is {lines}, allowed 1-{MAX_LOG_LINES}"));
        }
        DeviceCommand::TestCall { target } => check_target(target)?,
        _ => {}
    }
    Ok(cmd)
}

/// Runs a parsed command on the device and builds the reply.
pub fn execute(device: &dyn Device, cmd: &DeviceCommand) -> Value {
    let result = match cmd {
        DeviceCommand::Reload {} => device.reload(),
        DeviceCommand::Logs { lines } => device
            .recent_logs(*lines as usize)
            .map(|l| json!({ "lines": l })),
        DeviceCommand::Outbound { action } => {
            device.outbound_queue(*action == OutboundAction::Start)
        }
        DeviceCommand::TestCall { target } => device.place_test_call(target),
    };
    match result {
        Ok(v) => json!({ "ok": true, "result": v }),
        Err(e) => json!({ "ok": false, "error": e }),
    }
}

/// The reply for a command that was refused before running.
pub fn refusal(reason: &str) -> Value {
    json!({ "ok": false, "error": reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_pushes_are_checked() {
        let ok = parse_desired(br#"{"version":3,"config":{"robot":"x"}}"#).unwrap();
        assert_eq!(ok.version, 3);
        let big = vec![b' '; MAX_CONFIG_BYTES + 1];
        assert_eq!(
            parse_desired(&big).unwrap_err(),
            vec![format!(
                "config push is {} bytes, the limit is 65536",
                MAX_CONFIG_BYTES + 1
            )]
        );
        assert!(parse_desired(b"{not json").unwrap_err()[0].contains("not valid JSON"));
        assert!(
            parse_desired(br#"{"version":1,"config":{},"x":1}"#).unwrap_err()[0]
                .contains("unknown field")
        );
        assert!(parse_desired(br#"{"version":0,"config":{}}"#).is_err());
        assert!(parse_desired(br#"{"version":1,"config":[1]}"#).is_err());
    }

    #[test]
    fn versions_only_move_forward() {
        assert_eq!(decide(1, None), ConfigDecision::Apply);
        assert_eq!(decide(2, Some(1)), ConfigDecision::Apply);
        assert_eq!(decide(2, Some(2)), ConfigDecision::Unchanged);
        assert_eq!(decide(1, Some(2)), ConfigDecision::Stale { current: 2 });
    }

    struct Caller(std::sync::Mutex<Vec<String>>);

    impl Device for Caller {
        fn apply_config(&self, _: u64, _: &Value) -> Result<(), Vec<String>> {
            Ok(())
        }
        fn place_test_call(&self, target: &str) -> Result<Value, String> {
            if target == "+100" {
                return Err("SIP: 486 Busy Here".into());
            }
            self.0.lock().unwrap().push(target.to_string());
            Ok(json!({ "call_id": "t-1" }))
        }
    }

    #[test]
    fn test_calls_are_checked_then_routed_to_the_device() {
        let cmd =
            parse_command(br#"{"command":"test_call","target":"sip:101@pbx.local;transport=tcp"}"#)
                .unwrap();
        assert_eq!(
            cmd,
            DeviceCommand::TestCall {
                target: "sip:101@pbx.local;transport=tcp".into()
            }
        );
        let dev = Caller(Default::default());
        let r = execute(&dev, &cmd);
        assert_eq!(r, json!({ "ok": true, "result": { "call_id": "t-1" } }));
        assert_eq!(
            *dev.0.lock().unwrap(),
            vec!["sip:101@pbx.local;transport=tcp"]
        );
        let r = execute(
            &dev,
            &parse_command(br#"{"command":"test_call","target":"+100"}"#).unwrap(),
        );
        assert_eq!(r, json!({ "ok": false, "error": "SIP: 486 Busy Here" }));

        let e = parse_command(br#"{"command":"test_call","target":""}"#).unwrap_err();
        assert_eq!(e, "test_call: target is 0 characters, allowed 1-128");
        let e = parse_command(br#"{"command":"test_call","target":"+1555\r\nBYE"}"#).unwrap_err();
        assert!(e.contains("use a phone number or a SIP URI"), "{e}");
        let long = format!(
            r#"{{"command":"test_call","target":"{}"}}"#,
            "1".repeat(129)
        );
        assert!(parse_command(long.as_bytes())
            .unwrap_err()
            .contains("allowed 1-128"));
        let e = parse_command(br#"{"command":"test_call"}"#).unwrap_err();
        assert!(e.contains("missing field `target`"), "{e}");
        let e = parse_command(br#"{"command":"test_call","target":"1","x":1}"#).unwrap_err();
        assert!(e.contains("unknown field `x`"), "{e}");

        // A device without telephony says so.
        struct Plain;
        impl Device for Plain {
            fn apply_config(&self, _: u64, _: &Value) -> Result<(), Vec<String>> {
                Ok(())
            }
        }
        let r = execute(
            &Plain,
            &parse_command(br#"{"command":"test_call","target":"101"}"#).unwrap(),
        );
        assert_eq!(r["ok"], false);
        assert!(r["error"].as_str().unwrap().contains("no telephony"), "{r}");
    }

    #[test]
    fn commands_are_strict() {
        assert_eq!(
            parse_command(br#"{"command":"reload"}"#).unwrap(),
            DeviceCommand::Reload {}
        );
        assert_eq!(
            parse_command(br#"{"command":"outbound","action":"stop"}"#).unwrap(),
            DeviceCommand::Outbound {
                action: OutboundAction::Stop
            }
        );
        let e = parse_command(br#"{"command":"format_disk"}"#).unwrap_err();
        assert!(e.contains("unknown variant `format_disk`"), "{e}");
        let e = parse_command(br#"{"command":"logs","lines":0}"#).unwrap_err();
        assert_eq!(e, "logs: lines is 0, allowed 1-1000");
        let e = parse_command(br#"{"command":"outbound","action":"maybe"}"#).unwrap_err();
        assert!(e.contains("unknown variant `maybe`"), "{e}");
        let e = parse_command(br#"{"command":"reload","force":true}"#).unwrap_err();
        assert!(e.contains("unknown field `force`"), "{e}");
    }
}
