//! Loading robot folders from disk: the shipped robots, and every kind of
//! broken robot.toml naming its file and problem.

use std::fs;
use std::path::{Path, PathBuf};
use vb_dialog::{Dialog, Issue, Language, Mode, PhraseId, Robot, RobotError};

fn repo_robots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../robots")
}

/// A complete, valid robot.toml; tests break one thing at a time.
fn valid_toml() -> String {
    let mut t = String::from(
        "name = \"test-bot\"\n\
         language = \"en\"\n\
         default_country = \"1\"\n\
         \n\
         [ask]\n\
         dates = true\n\
         \n\
         [phrases]\n",
    );
    for id in PhraseId::ALL {
        let text = if id == PhraseId::Confirm {
            "{name}, {phone}, {request}, {dates}?".to_owned()
        } else {
            format!("Phrase {id}.")
        };
        t.push_str(&format!("{id} = \"{text}\"\n"));
    }
    t
}

fn robot_dir(toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("robot.toml"), toml).unwrap();
    dir
}

fn issues(err: RobotError) -> Vec<Issue> {
    match err {
        RobotError::Invalid { issues, .. } => issues,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn shipped_robot_folders_match_the_builtins() {
    for name in Robot::builtin_names() {
        let dir = repo_robots().join(name);
        let loaded = Robot::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        let builtin = Robot::builtin(name).unwrap();
        assert_eq!(loaded.name, builtin.name);
        assert_eq!(loaded.config, builtin.config);
        assert_eq!(loaded.phrases(), builtin.phrases());
        assert_eq!(loaded.prompt, builtin.prompt);
        assert_eq!(loaded.dir.as_deref(), Some(dir.as_path()));
        assert!(builtin.dir.is_none());
    }
    let ru = Robot::builtin("reception-ru").unwrap();
    assert_eq!(ru.language, Language::Ru);
    assert_eq!(ru.config.default_country, "7");
    assert!(ru.config.ask.city && ru.config.ask.dates);
}

#[test]
fn valid_folder_loads() {
    let dir = robot_dir(&valid_toml());
    let robot = Robot::load(dir.path()).unwrap();
    assert_eq!(robot.name, "test-bot");
    assert_eq!(robot.config.mode, Mode::Script);
    assert!(robot.prompt.is_none());
}

#[test]
fn missing_robot_toml() {
    let dir = tempfile::tempdir().unwrap();
    let err = Robot::load(dir.path()).unwrap_err();
    assert!(matches!(err, RobotError::NotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("robot.toml"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}

#[test]
fn toml_syntax_error_names_line() {
    let toml = valid_toml().replace("language = \"en\"", "language = \"en");
    let dir = robot_dir(&toml);
    let err = Robot::load(dir.path()).unwrap_err();
    let RobotError::Parse { path, line, .. } = &err else {
        panic!("expected Parse, got {err:?}");
    };
    assert_eq!(*line, 2);
    assert_eq!(path, &dir.path().join("robot.toml"));
    let msg = err.to_string();
    assert!(msg.contains("robot.toml:2:"), "{msg}");
}

#[test]
fn unknown_key_is_an_error() {
    let toml = valid_toml().replace("[ask]\n", "colour = \"blue\"\n[ask]\n");
    let dir = robot_dir(&toml);
    let err = Robot::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RobotError::Parse { line: 5, .. }), "{err:?}");
    assert!(msg.contains("colour"), "{msg}");
    assert!(msg.contains("robot.toml"), "{msg}");
}

#[test]
fn misspelt_phrase_key_is_an_error() {
    let toml = valid_toml().replace("ask_phone =", "ask_phnoe =");
    let err = Robot::load(robot_dir(&toml).path()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("ask_phnoe"), "{msg}");
}

#[test]
fn invalid_language() {
    let toml = valid_toml().replace("language = \"en\"", "language = \"de\"");
    let dir = robot_dir(&toml);
    let err = Robot::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("robot.toml"), "{msg}");
    assert!(msg.contains("language: \"de\" is not valid"), "{msg}");
    assert_eq!(
        issues(err),
        [Issue::NotOneOf {
            key: "language".into(),
            value: "de".into(),
            expected: "\"en\" or \"ru\"",
        }]
    );
}

#[test]
fn empty_phrase() {
    let toml = valid_toml().replace("greeting = \"Phrase greeting.\"", "greeting = \"  \"");
    let err = Robot::load(robot_dir(&toml).path()).unwrap_err();
    assert!(err
        .to_string()
        .contains("phrases.greeting: must not be empty"));
    assert_eq!(
        issues(err),
        [Issue::Empty {
            key: "phrases.greeting".into()
        }]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let toml = valid_toml()
        .replace("language = \"en\"", "language = \"english\"")
        .replace(
            "default_country = \"1\"",
            "default_country = \"+1\"\nmax_turns = 0\nstt_language = \"fr\"",
        )
        .replace("goodbye = \"Phrase goodbye.\"\n", "")
        .replace(
            "ask_name = \"Phrase ask_name.\"",
            "ask_name = \"Hi {nmae}\"",
        )
        .replace("ask_city = \"Phrase ask_city.\"", "ask_city = \"{city}?\"")
        .replace("dates = true", "dates = true\n[limits]\nretries = 99");
    let dir = robot_dir(&toml);
    let err = Robot::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    let got = issues(err);
    let keys: Vec<String> = got
        .iter()
        .map(|i| i.to_string().split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            "language",
            "stt_language",
            "default_country",
            "max_turns",
            "limits.retries",
            "phrases.ask_name",
            "phrases.ask_city",
            "phrases.goodbye",
        ],
        "{msg}"
    );
    assert!(msg.contains("8 problem(s)"), "{msg}");
    assert!(msg.contains("unknown placeholder {nmae}"), "{msg}");
    assert!(msg.contains("uses {city} but ask.city is false"), "{msg}");
    assert!(msg.contains("phrases.goodbye: missing"), "{msg}");
}

#[test]
fn declared_wav_must_exist() {
    let toml = format!(
        "{}\n[audio]\ngreeting = \"audio/greeting.wav\"\n",
        valid_toml()
    );
    let dir = robot_dir(&toml);
    let err = Robot::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("audio.greeting: declared audio file"), "{msg}");
    assert!(msg.contains("greeting.wav does not exist"), "{msg}");
    assert!(matches!(&issues(err)[..], [Issue::MissingAudio { .. }]));

    // Once the file is there, the phrase and its replies carry the path.
    fs::create_dir(dir.path().join("audio")).unwrap();
    let wav = dir.path().join("audio/greeting.wav");
    fs::write(&wav, b"RIFF").unwrap();
    let robot = Robot::load(dir.path()).unwrap();
    assert_eq!(
        robot.phrase("greeting").unwrap().audio.as_deref(),
        Some(wav.as_path())
    );
    let reply = Dialog::new(&robot).start();
    assert_eq!(reply.audio.as_deref(), Some(wav.as_path()));
}

#[test]
fn bad_audio_declarations() {
    let toml = format!(
        "{}\n[audio]\nconfirm = \"audio/confirm.wav\"\nask_fax = \"audio/x.wav\"\nask_name = \"../../etc/x.wav\"\nask_need = \"audio/need.mp3\"\n",
        valid_toml()
    );
    let dir = robot_dir(&toml);
    fs::create_dir(dir.path().join("audio")).unwrap();
    fs::write(dir.path().join("audio/confirm.wav"), b"RIFF").unwrap();
    let got = issues(Robot::load(dir.path()).unwrap_err());
    assert!(got.contains(&Issue::UnknownPhrase {
        key: "audio.ask_fax".into()
    }));
    assert!(got.contains(&Issue::BadAudioPath {
        key: "audio.ask_name".into(),
        path: "../../etc/x.wav".into()
    }));
    assert!(got.contains(&Issue::BadAudioPath {
        key: "audio.ask_need".into(),
        path: "audio/need.mp3".into()
    }));
    assert!(got.contains(&Issue::AudioWithPlaceholders {
        key: "audio.confirm".into()
    }));
    assert_eq!(got.len(), 4, "{got:?}");
}

#[test]
fn text_robot_cannot_declare_audio() {
    let toml = format!(
        "{}\n[audio]\ngreeting = \"audio/greeting.wav\"\n",
        valid_toml()
    );
    let err = Robot::from_toml(&toml, Path::new("pushed.toml")).unwrap_err();
    assert!(
        err.to_string().starts_with("pushed.toml: 1 problem(s)"),
        "{err}"
    );
    assert_eq!(
        issues(err),
        [Issue::AudioWithoutFolder {
            key: "audio.greeting".into()
        }]
    );
}

#[test]
fn llm_modes_need_a_prompt_and_run_the_script() {
    let toml = valid_toml().replace("language = \"en\"", "language = \"en\"\nmode = \"llm\"");
    let dir = robot_dir(&toml);
    let err = Robot::load(dir.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("mode: mode \"llm\" needs prompt.md"),
        "{err}"
    );

    fs::write(dir.path().join("prompt.md"), "You are a receptionist.").unwrap();
    let robot = Robot::load(dir.path()).unwrap();
    assert_eq!(robot.config.mode, Mode::Llm);
    assert_eq!(robot.prompt.as_deref(), Some("You are a receptionist."));
    assert_eq!(Dialog::new(&robot).start().phrase_id, "greeting");

    let bad = valid_toml().replace(
        "language = \"en\"",
        "language = \"en\"\nmode = \"pipeline\"",
    );
    let got = issues(Robot::load(robot_dir(&bad).path()).unwrap_err());
    assert!(matches!(&got[..], [Issue::NotOneOf { key, .. }] if key == "mode"));
}

#[test]
fn wrong_type_names_line() {
    let toml = valid_toml().replace("default_country = \"1\"", "default_country = 1");
    let err = Robot::load(robot_dir(&toml).path()).unwrap_err();
    assert!(matches!(err, RobotError::Parse { line: 3, .. }), "{err:?}");
}
