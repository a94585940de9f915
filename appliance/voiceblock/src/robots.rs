//! The robot the daemon answers with, switchable while it runs.
//!
//! Every call (inbound, outbound, test) takes the robot in force when it
//! starts; calls under way keep theirs. `POST /api/robots/{name}/activate`
//! switches it, and a robot update from the fleet for the robot in force
//! reloads it, both without a restart, as long as the new robot speaks the
//! language the engines were loaded for (its voice is ready); otherwise the
//! choice is kept and takes effect at the next start. The choice is
//! remembered in `$STATE_DIRECTORY/active-robot` across restarts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};
use vb_api::ActivateError;
use vb_dialog::{Robot, RobotError};

/// The robot in force and where robots come from.
pub(crate) struct ActiveRobot {
    current: RwLock<Arc<Robot>>,
    robots_dir: PathBuf,
    state_file: PathBuf,
}

impl ActiveRobot {
    pub(crate) fn new(robot: Arc<Robot>, robots_dir: PathBuf, state_file: PathBuf) -> ActiveRobot {
        ActiveRobot {
            current: RwLock::new(robot),
            robots_dir,
            state_file,
        }
    }

    /// The robot a call starting now uses.
    pub(crate) fn get(&self) -> Arc<Robot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The name an operator activated, remembered across restarts, when it
    /// still names a robot folder or a built-in (a robot spec for `--robot`).
    pub(crate) fn remembered(state_file: &Path, robots_dir: &Path) -> Option<String> {
        let name = std::fs::read_to_string(state_file).ok()?.trim().to_string();
        if !vb_sync::robot_update::valid_name(&name) {
            return None;
        }
        let folder = robots_dir.join(&name);
        if folder.join("robot.toml").is_file() {
            Some(folder.display().to_string())
        } else {
            Robot::builtin(&name).map(|_| name)
        }
    }

    fn load(&self, name: &str) -> Result<Robot, ActivateError> {
        if !vb_sync::robot_update::valid_name(name) {
            return Err(ActivateError::BadName(name.to_string()));
        }
        match Robot::load(&self.robots_dir.join(name)) {
            Ok(r) => Ok(r),
            Err(RobotError::NotFound { .. }) => {
                Robot::builtin(name).ok_or_else(|| ActivateError::NotFound(name.to_string()))
            }
            Err(RobotError::Invalid { path, issues }) => Err(ActivateError::Invalid(
                issues
                    .iter()
                    .map(|i| format!("{}: {i}", path.display()))
                    .collect(),
            )),
            Err(e) => Err(ActivateError::Invalid(vec![e.to_string()])),
        }
    }

    /// Puts `robot` in force if the engines can speak it now; says when it
    /// takes effect.
    fn swap(&self, robot: Robot) -> Value {
        let name = robot.name.clone();
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if robot.language != current.language {
            return json!({
                "active": name,
                "takes_effect": "at the next start",
                "why": format!(
                    "it speaks {}; the engines running now were loaded for {}",
                    robot.language.code(),
                    current.language.code()
                ),
            });
        }
        *current = Arc::new(robot);
        tracing::info!(robot = %name, "robot in force for new calls");
        json!({ "active": name, "takes_effect": "now" })
    }

    /// A fleet update installed folder `name`: reload it if it is in force.
    pub(crate) fn installed(&self, name: &str) -> Value {
        if self.get().name != name {
            return json!({ "takes_effect": "when activated" });
        }
        match self.load(name) {
            Ok(robot) => self.swap(robot),
            Err(e) => json!({ "takes_effect": "not loaded", "why": e.to_string() }),
        }
    }
}

impl vb_api::RobotSwitch for ActiveRobot {
    fn active(&self) -> String {
        self.get().name.clone()
    }

    fn activate(&self, name: &str) -> Result<Value, ActivateError> {
        let robot = self.load(name)?;
        std::fs::write(&self.state_file, format!("{name}\n")).map_err(|e| {
            ActivateError::Other(format!(
                "cannot remember the choice in {}: {e}",
                self.state_file.display()
            ))
        })?;
        Ok(self.swap(robot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vb_api::RobotSwitch;

    fn folder(robots: &Path, name: &str, greeting: &str) {
        let shipped =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../robots/reception-en/robot.toml");
        let text = std::fs::read_to_string(shipped).unwrap();
        let old = text
            .lines()
            .find(|l| l.starts_with("greeting = "))
            .unwrap()
            .to_string();
        let text = text
            .replace("name = \"reception-en\"", &format!("name = \"{name}\""))
            .replace(&old, &format!("greeting = \"{greeting}\""));
        std::fs::create_dir_all(robots.join(name)).unwrap();
        std::fs::write(robots.join(name).join("robot.toml"), text).unwrap();
    }

    #[test]
    fn updates_reload_the_robot_in_force_and_activation_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let robots = dir.path().join("robots");
        folder(&robots, "desk", "Hello from the desk.");
        let state = dir.path().join("active-robot");
        let first = Arc::new(Robot::load(&robots.join("desk")).unwrap());
        let active = ActiveRobot::new(first, robots.clone(), state.clone());

        // The fleet updates the robot in force: the next call gets it.
        folder(&robots, "desk", "Hello again from the desk.");
        assert_eq!(active.installed("desk")["takes_effect"], "now");
        let greeting = vb_dialog::Dialog::new(&active.get()).start().text;
        assert_eq!(greeting, "Hello again from the desk.");
        // Another folder waits to be activated; a broken update is not loaded.
        folder(&robots, "lobby", "Hello from the lobby.");
        assert_eq!(active.installed("lobby")["takes_effect"], "when activated");
        std::fs::write(
            robots.join("desk/robot.toml"),
            "name = \"desk\"\nlanguage = \"fr\"\n",
        )
        .unwrap();
        assert_eq!(active.installed("desk")["takes_effect"], "not loaded");
        assert_eq!(active.get().name, "desk", "the last good one stays");

        // Activation: now in the same language, at the next start in another.
        assert_eq!(active.activate("lobby").unwrap()["takes_effect"], "now");
        assert_eq!(active.active(), "lobby");
        let ru = active.activate("reception-ru").unwrap();
        assert_eq!(ru["takes_effect"], "at the next start", "{ru}");
        assert_eq!(active.active(), "lobby");
        assert_eq!(
            ActiveRobot::remembered(&state, &robots).as_deref(),
            Some("reception-ru")
        );
        assert!(matches!(
            active.activate("desk"),
            Err(ActivateError::Invalid(_))
        ));
        assert!(matches!(
            active.activate("nobody"),
            Err(ActivateError::NotFound(_))
        ));
        assert!(matches!(
            active.activate("../etc"),
            Err(ActivateError::BadName(_))
        ));
        assert_eq!(
            ActiveRobot::remembered(&state, &robots).as_deref(),
            Some("reception-ru"),
            "refusals change nothing"
        );
    }
}
