//! The topic tree. Every device lives under `voiceblock/<device>/`; the
//! broker's ACL (`pattern readwrite voiceblock/%u/#`) keeps it there.
//!
//! ```text
//! voiceblock/<device>/status               retained JSON; last will {"state":"offline"}
//! voiceblock/<device>/leads                one message per lead (outbox, QoS 1, "id")
//! voiceblock/<device>/calls                one message per call record (outbox, QoS 1, "id")
//! voiceblock/<device>/metrics              periodic JSON (QoS 0)
//! voiceblock/<device>/config/desired       retained, from the fleet
//! voiceblock/<device>/config/reported      retained, from the box: applied version or errors
//! voiceblock/<device>/cmd/<request-id>     a command from the fleet
//! voiceblock/<device>/cmd/<request-id>/reply   the box's answer
//! voiceblock/<device>/robot/<request-id>   a robot update (JSON: name, sha256, base64 tar.gz)
//! voiceblock/<device>/robot/<request-id>/reply the box's answer (installed, or why not)
//! ```

/// Root of the tree.
pub const ROOT: &str = "voiceblock";

/// Longest device id or request id.
pub const MAX_ID_LEN: usize = 64;

/// True for ids safe as one topic level: `[A-Za-z0-9_.-]{1,64}`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The topics of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
}

/// What an incoming message on a device's subscriptions is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A config push.
    ConfigDesired,
    /// A command with its request id.
    Command(String),
    /// A robot update with its request id.
    RobotUpdate(String),
    /// A command or robot topic whose request id is not valid.
    BadRequestId,
    /// Something the box did not subscribe to.
    Other,
}

impl Topics {
    /// Topics of `device` (which the config has validated with [`valid_id`]).
    pub fn new(device: &str) -> Topics {
        Topics {
            base: format!("{ROOT}/{device}"),
        }
    }

    /// `voiceblock/<device>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A suffix under the device (`leads`, `calls`, ...).
    pub fn sub(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.base)
    }

    /// Retained status.
    pub fn status(&self) -> String {
        self.sub("status")
    }

    /// Metrics.
    pub fn metrics(&self) -> String {
        self.sub("metrics")
    }

    /// Config pushes (the box subscribes).
    pub fn config_desired(&self) -> String {
        self.sub("config/desired")
    }

    /// Config reports (the box publishes, retained).
    pub fn config_reported(&self) -> String {
        self.sub("config/reported")
    }

    /// The box's command subscription.
    pub fn cmd_filter(&self) -> String {
        self.sub("cmd/+")
    }

    /// A command's topic.
    pub fn cmd(&self, request_id: &str) -> String {
        self.sub(&format!("cmd/{request_id}"))
    }

    /// A command's reply topic.
    pub fn cmd_reply(&self, request_id: &str) -> String {
        self.sub(&format!("cmd/{request_id}/reply"))
    }

    /// The box's robot-update subscription.
    pub fn robot_filter(&self) -> String {
        self.sub("robot/+")
    }

    /// A robot update's topic.
    pub fn robot(&self, request_id: &str) -> String {
        self.sub(&format!("robot/{request_id}"))
    }

    /// A robot update's reply topic.
    pub fn robot_reply(&self, request_id: &str) -> String {
        self.sub(&format!("robot/{request_id}/reply"))
    }

    /// Sorts an incoming topic.
    pub fn classify(&self, topic: &str) -> Incoming {
        let Some(rest) = topic
            .strip_prefix(self.base.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return Incoming::Other;
        };
        if rest == "config/desired" {
            return Incoming::ConfigDesired;
        }
        if let Some(id) = rest.strip_prefix("cmd/") {
            if !id.contains('/') {
                return if valid_id(id) {
                    Incoming::Command(id.to_string())
                } else {
                    Incoming::BadRequestId
                };
            }
        }
        if let Some(id) = rest.strip_prefix("robot/") {
            if !id.contains('/') {
                return if valid_id(id) {
                    Incoming::RobotUpdate(id.to_string())
                } else {
                    Incoming::BadRequestId
                };
            }
        }
        Incoming::Other
    }
}

/// Splits `voiceblock/<device>/<suffix>` into device and suffix.
pub fn split(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix(ROOT)?.strip_prefix('/')?;
    rest.split_once('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_classification() {
        let t = Topics::new("dev-a");
        assert_eq!(t.status(), "voiceblock/dev-a/status");
        assert_eq!(t.cmd_reply("r1"), "voiceblock/dev-a/cmd/r1/reply");
        assert_eq!(
            t.classify("voiceblock/dev-a/config/desired"),
            Incoming::ConfigDesired
        );
        assert_eq!(
            t.classify("voiceblock/dev-a/cmd/r-1"),
            Incoming::Command("r-1".into())
        );
        assert_eq!(
            t.classify("voiceblock/dev-a/cmd/r 1"),
            Incoming::BadRequestId
        );
        assert_eq!(t.classify("voiceblock/dev-a/cmd/r1/reply"), Incoming::Other);
        assert_eq!(
            t.classify("voiceblock/dev-a/robot/r-2"),
            Incoming::RobotUpdate("r-2".into())
        );
        assert_eq!(t.robot_reply("r-2"), "voiceblock/dev-a/robot/r-2/reply");
        assert_eq!(
            t.classify("voiceblock/dev-a/robot/r-2/reply"),
            Incoming::Other
        );
        assert_eq!(
            t.classify("voiceblock/dev-a/robot/a b"),
            Incoming::BadRequestId
        );
        assert_eq!(t.classify("voiceblock/dev-ab/cmd/r1"), Incoming::Other);
        assert_eq!(split("voiceblock/d1/leads"), Some(("d1", "leads")));
    }

    #[test]
    fn ids_must_be_one_safe_level() {
        assert!(valid_id("box-01.lab_2"));
        for bad in ["", "a/b", "a+b", "a#", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
