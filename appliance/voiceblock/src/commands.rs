//! One function per subcommand; each returns an error that names what failed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use vb_audio::{wav, Pcm};
use vb_call::{CallEngine, DemoCaller, EngineConfig, Simulation, WavCaller};
use vb_dialog::Robot;
use vb_models::{Manifest, Outcome, Source, Step};
use vb_stt::{Language, TranscribeOptions, Transcriber};
use vb_tts::CancelToken;
use vb_vad::SegmentConfig;

use crate::{bench, BenchWhat, Cli, Command, LangArg, ModelsAction, RobotsAction, SourceArg};
use vb_call::Models;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let models = Models::open(cli.models_dir.clone());
    match cli.command {
        Command::Models { action } => models_cmd(&models, action),
        Command::Transcribe {
            file,
            lang,
            model,
            verbose,
        } => {
            let model = models.stt_model(model.as_deref());
            transcribe(&models, &file, lang, &model, cli.threads, verbose)
        }
        Command::Say {
            text,
            out,
            lang,
            voice,
            rate,
        } => say(&models, &text, &out, lang, voice.as_deref(), rate),
        Command::Converse {
            robot,
            callers,
            demo,
            out,
            json,
            model,
            store,
        } => {
            if !demo && callers.is_empty() {
                bail!("give the caller's turns with --caller FILE.wav (one per turn), or --demo for the built-in caller");
            }
            let model = models.stt_model(model.as_deref());
            let record = converse(&models, &robot, &callers, &out, &json, &model, cli.threads)?;
            if let Some(db) = store {
                let id = crate::fleet::store_record(&db, &record)?;
                println!("stored call {id} in {}", db.display());
            }
            Ok(())
        }
        Command::Robots { action } => robots_cmd(action),
        Command::Run { line } => match crate::daemon::run(&models, line, cli.threads)? {
            crate::daemon::Outcome::Stopped => Ok(()),
            crate::daemon::Outcome::Restart(why) => crate::daemon::reexec(&why),
        },
        Command::Call { target, line } => crate::daemon::call(&models, &target, line, cli.threads),
        Command::Handset { device, line } => {
            crate::handset::run(&models, device, line, cli.threads)
        }
        Command::Provision(args) => provision_cmd(*args),
        Command::Check(args) => crate::check::command(&models, args),
        Command::Leads { action } => crate::fleet::leads(action),
        Command::Sync(args) => crate::fleet::sync(args),
        Command::Fleet(args) => crate::fleet::fleet(args),
        Command::Bench { what } => match what {
            BenchWhat::Stt { runs, models: stt } => bench::stt(&models, runs, &stt),
            BenchWhat::SttWindow {
                floors,
                fallback,
                models: stt,
                human,
            } => bench::stt_window(&models, &floors, &fallback, &stt, human),
            BenchWhat::Tts { runs } => bench::tts(&models, runs),
            BenchWhat::Turn { calls } => bench::turn(&models, calls, cli.threads),
            BenchWhat::Rtp { seconds } => bench::rtp(seconds),
            BenchWhat::Wire {
                models: speech,
                turns,
                levels,
                api_load,
                stt_at_pause,
                stagger_ms,
            } => crate::bench_wire::wire(
                &models,
                crate::bench_wire::WireArgs {
                    models: speech,
                    turns,
                    levels,
                    api_load,
                    stt_at_pause,
                    stagger_ms,
                },
            ),
            BenchWhat::Api {
                addr,
                token,
                concurrency,
                requests,
                path,
            } => bench::api(addr, token, concurrency, requests, &path),
        },
    }
}

fn models_cmd(models: &Models, action: ModelsAction) -> Result<()> {
    match action {
        ModelsAction::Fetch {
            only,
            source,
            manifest,
        } => {
            let manifest = match manifest {
                Some(path) => Manifest::load(&path)?,
                None => models.manifest.clone(),
            };
            let source = match source {
                SourceArg::Airgap => Source::Airgap,
                SourceArg::Official => Source::Official,
            };
            // One line per model and step, then one per 10 % of a known total.
            let mut last: Option<(String, Step, u64)> = None;
            let report = models.store.fetch(&manifest, &only, source, &mut |p| {
                let tenth = p.total.filter(|t| *t > 0).map_or(0, |t| p.done * 10 / t);
                let key = (p.model.clone(), p.step, tenth);
                if last.as_ref() != Some(&key) {
                    match p.total {
                        Some(total) => eprintln!(
                            "{:<28} {:<9} {:>3}% of {} bytes",
                            p.model,
                            format!("{:?}", p.step).to_lowercase(),
                            tenth * 10,
                            total
                        ),
                        None => eprintln!(
                            "{:<28} {:<9} {} bytes",
                            p.model,
                            format!("{:?}", p.step).to_lowercase(),
                            p.done
                        ),
                    }
                    last = Some(key);
                }
            })?;
            for m in &report.models {
                let what = match m.outcome {
                    Outcome::AlreadyPresent => "already installed".to_string(),
                    Outcome::Installed(s) => format!("installed ({s:?})").to_lowercase(),
                    Outcome::Derived => {
                        let from = manifest.get(&m.name).and_then(|e| e.derive.as_ref());
                        format!("made from {}", from.map_or("?", |d| d.from.as_str()))
                    }
                };
                println!("{:<28} {:<22} {}", m.name, what, m.path.display());
            }
            Ok(())
        }
        ModelsAction::List => {
            println!("cache: {}", models.store.root().display());
            for m in &models.manifest.models {
                let state = match models.store.locate(&models.manifest, &m.name) {
                    Ok(_) => "installed".to_string(),
                    Err(e) => format!("not installed ({e})"),
                };
                println!(
                    "{:<28} {:<10} {:>11} bytes  {}  {}",
                    m.name, m.role, m.size, m.licence, state
                );
            }
            Ok(())
        }
        ModelsAction::Verify => {
            let mut bad = 0;
            for m in &models.manifest.models {
                if !m.fits_arch(std::env::consts::ARCH) && !m.name.starts_with("onnxruntime-") {
                    continue;
                }
                match models.store.verify(&models.manifest, &m.name) {
                    Ok(path) => println!("ok      {} ({})", m.name, path.display()),
                    Err(e) => {
                        bad += 1;
                        println!("FAILED  {}: {e}", m.name);
                    }
                }
            }
            if bad > 0 {
                bail!("{bad} model(s) failed verification: run `voiceblock models fetch`");
            }
            Ok(())
        }
    }
}

fn stt_language(lang: LangArg) -> Language {
    match lang {
        LangArg::Ru => Language::Ru,
        LangArg::En => Language::En,
        LangArg::Auto => Language::Auto,
    }
}

fn transcribe(
    models: &Models,
    file: &Path,
    lang: LangArg,
    model: &str,
    threads: usize,
    verbose: bool,
) -> Result<()> {
    let audio = wav::read(file)?;
    let mut stt = models.transcriber(model, threads)?;
    let utterances = vb_vad::segment(&audio, &SegmentConfig::default())
        .with_context(|| format!("finding speech in {}", file.display()))?;
    if utterances.is_empty() {
        eprintln!(
            "{}: no speech found ({} ms of audio)",
            file.display(),
            audio.duration_ms()
        );
        return Ok(());
    }
    let opts = TranscribeOptions {
        language: stt_language(lang),
        ..TranscribeOptions::default()
    };
    let mut out = std::io::stdout().lock();
    for u in &utterances {
        let t = stt
            .transcribe(&u.to_pcm().samples, &opts)
            .with_context(|| format!("{}: utterance at {} ms", file.display(), u.start_ms))?;
        if verbose {
            eprintln!(
                "[{:>7} - {:>7} ms] model={model} lang={} audio_ctx={} stt={} ms{}",
                u.start_ms,
                u.end_ms,
                t.language.map_or("-", |l| l.code()),
                t.audio_ctx,
                t.elapsed_ms,
                t.filtered
                    .map(|r| format!(" filtered: {r:?}"))
                    .unwrap_or_default()
            );
        }
        if !t.text.is_empty() {
            writeln!(out, "{}", t.text)?;
        }
    }
    Ok(())
}

fn text_language(lang: LangArg, text: &str) -> &'static str {
    match lang {
        LangArg::Ru => "ru",
        LangArg::En => "en",
        LangArg::Auto => {
            if text.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c)) {
                "ru"
            } else {
                "en"
            }
        }
    }
}

fn say(
    models: &Models,
    text: &str,
    out: &Path,
    lang: LangArg,
    voice: Option<&str>,
    rate: u32,
) -> Result<()> {
    let mut tts = models.tts()?;
    let language = match voice {
        Some(name) => {
            let info = tts
                .selector()
                .voices()
                .iter()
                .find(|v| v.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = tts
                        .selector()
                        .voices()
                        .iter()
                        .map(|v| v.name.as_str())
                        .collect();
                    anyhow!(
                        "no voice {name:?} in {}; installed: {}",
                        tts.voices_dir().display(),
                        names.join(", ")
                    )
                })?;
            let code = info
                .language_code
                .clone()
                .unwrap_or_else(|| info.espeak_voice.clone());
            code.split(['_', '-']).next().unwrap_or("en").to_string()
        }
        None => text_language(lang, text).to_string(),
    };
    let mut audio = Pcm::new(rate, Vec::new());
    let t0 = std::time::Instant::now();
    let mut first = None;
    for sentence in tts.stream(&language, text, rate, CancelToken::new())? {
        let sentence = sentence?;
        first.get_or_insert(t0.elapsed());
        audio.append(&sentence.pcm)?;
    }
    wav::write(out, &audio)?;
    eprintln!(
        "{}: {} ms of audio at {} Hz, first audio after {} ms, total {} ms",
        out.display(),
        audio.duration_ms(),
        rate,
        first.unwrap_or_default().as_millis(),
        t0.elapsed().as_millis()
    );
    Ok(())
}

/// Loads a robot by built-in name or folder.
pub fn load_robot(spec: &str) -> Result<Robot> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(Robot::load(path)?);
    }
    Robot::builtin(spec).ok_or_else(|| {
        anyhow!(
            "no robot {spec:?}: not a folder, and not a built-in robot ({})",
            Robot::builtin_names().join(", ")
        )
    })
}

/// The robot's model endpoint, when its mode uses one and its folder has
/// an `llm.toml`; `None` runs the script (said on stderr when the mode
/// asked for a model).
pub fn load_llm(robot: &Robot) -> Result<Option<vb_llm::LlmEngine>> {
    if !robot.config.mode.uses_llm() {
        return Ok(None);
    }
    let config = match &robot.dir {
        Some(dir) => vb_llm::LlmConfig::load(dir, robot.language)
            .with_context(|| format!("robot {}: {}", robot.name, vb_llm::LLM_FILE))?,
        None => None,
    };
    let Some(config) = config else {
        eprintln!(
            "voiceblock: robot {} is in {} mode but has no {}: it runs the script",
            robot.name,
            robot.config.mode.code(),
            vb_llm::LLM_FILE
        );
        return Ok(None);
    };
    let client = vb_llm::LlmClient::new(&config)
        .with_context(|| format!("robot {}: the LLM client", robot.name))?;
    Ok(Some(vb_llm::LlmEngine::new(client)))
}

fn converse(
    models: &Models,
    robot: &str,
    callers: &[PathBuf],
    out: &Path,
    json: &Path,
    model: &str,
    threads: usize,
) -> Result<vb_call::CallRecord> {
    let robot = load_robot(robot)?;
    let llm = load_llm(&robot)?;
    let mut stt = models.transcriber(model, threads)?;
    let mut tts = models.tts()?;
    let voice_name = tts.voice(robot.language.code())?.name().to_string();
    let (record, audio) = if callers.is_empty() {
        // The demo caller speaks with espeak-ng, a different voice from the robot's.
        let mut caller_voice = models.caller_voice(robot.language.code())?;
        let mut caller = DemoCaller::new(robot.language, caller_voice.as_mut());
        let mut engine = CallEngine::new(&mut stt, &mut tts, &robot, EngineConfig::default());
        Simulation::new(&mut engine, &robot, voice_name, model.to_string())
            .with_llm(llm)
            .run(&mut caller)?
    } else {
        let mut caller = WavCaller::new(callers.to_vec());
        let mut engine = CallEngine::new(&mut stt, &mut tts, &robot, EngineConfig::default());
        Simulation::new(&mut engine, &robot, voice_name, model.to_string())
            .with_llm(llm)
            .run(&mut caller)?
    };
    wav::write(out, &audio)?;
    let text = serde_json::to_string_pretty(&record)?;
    std::fs::write(json, text + "\n").with_context(|| format!("writing {}", json.display()))?;

    for t in &record.turns {
        if !t.caller_transcript.is_empty() || t.index > 0 {
            println!(
                "caller: {}",
                if t.caller_transcript.is_empty() {
                    "(silence)"
                } else {
                    &t.caller_transcript
                }
            );
        }
        println!(
            "robot:  {}    [{} ms to first audio{}]",
            t.robot_reply,
            t.timings.processing_ms,
            if t.index > 0 {
                format!(", stt {} ms", t.timings.stt_ms)
            } else {
                String::new()
            }
        );
    }
    if let (Some(summary), Some(interest)) = (&record.summary, &record.interest) {
        println!("summary ({interest}): {summary}");
    }
    if let Some(why) = &record.fallback {
        println!("mode {}: fell back to the script: {why}", record.mode);
    }
    let lead = &record.lead;
    println!(
        "lead: name={} phone={} request={} interest={:?}",
        lead.name.as_deref().unwrap_or("-"),
        lead.phone.as_deref().unwrap_or("-"),
        lead.request.as_deref().unwrap_or("-"),
        lead.interest
    );
    println!("wrote {} and {}", out.display(), json.display());
    Ok(record)
}

fn robots_cmd(action: RobotsAction) -> Result<()> {
    match action {
        RobotsAction::List => {
            for name in Robot::builtin_names() {
                let r =
                    Robot::builtin(name).ok_or_else(|| anyhow!("built-in robot {name} missing"))?;
                println!(
                    "{name:<16} language={} mode={}",
                    r.language.code(),
                    r.config.mode.code()
                );
            }
            Ok(())
        }
        RobotsAction::Check { dir } => {
            let r = Robot::load(&dir)?;
            println!(
                "{}: robot {:?}, language {}, mode {}, {} phrases: ok",
                dir.display(),
                r.name,
                r.language.code(),
                r.config.mode.code(),
                r.phrases().len()
            );
            Ok(())
        }
    }
}

fn provision_cmd(args: crate::provision::ProvisionArgs) -> Result<()> {
    let done = crate::provision::provision(args)?;
    println!("wrote {}", done.config.display());
    println!("wrote {} (mode 0600)", done.secrets.display());
    if let Some(token) = done.generated_token {
        println!("API token (shown once, stored in the secrets file): {token}");
    }
    println!("next: voiceblock check --config {}", done.config.display());
    Ok(())
}
