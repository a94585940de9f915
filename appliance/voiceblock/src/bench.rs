//! `voiceblock bench`: the measurements behind docs/benchmarks.md.
//!
//! Speech for the STT benchmark is synthesized by the box's own Piper voice
//! (known reference text, so word error rates come for free); every figure is
//! a median over repeated runs, printed as a Markdown table.

use std::time::Instant;

use anyhow::{Context, Result};
use vb_call::{CallEngine, DemoCaller, EngineConfig, Simulation};
use vb_dialog::{Language as RobotLanguage, Robot};
use vb_stt::{BenchClip, BenchConfig, Lang};
use vb_tts::CancelToken;

use vb_call::Models;

/// English utterances of about 2, 5 and 10 seconds.
const STT_CLIPS: [(&str, &str); 3] = [
    ("2s", "Please call me back tomorrow."),
    (
        "5s",
        "My name is John Smith and I would like to book a table for four people on Friday evening.",
    ),
    (
        "10s",
        "Hello, I am calling about the apartment on Baker Street. I would like to see it this weekend, \
         if possible on Saturday morning, and my phone number is five five five, one two three, four five six seven.",
    ),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// STT: our windowed path vs whisper.cpp's plain 30 s window, tiny.en and base.
pub fn stt(models: &Models, runs: usize, which: &[String]) -> Result<()> {
    let mut tts = models.tts()?;
    let mut clips = Vec::new();
    for (name, text) in STT_CLIPS {
        let mut audio = Vec::new();
        for s in tts.stream("en", text, 16_000, CancelToken::new())? {
            audio.extend_from_slice(&s?.pcm.samples);
        }
        clips.push(BenchClip {
            name: name.to_string(),
            audio_16k: audio,
            lang: Lang::En,
            reference: Some(text.to_string()),
        });
    }
    let config = BenchConfig {
        models: stt_models(models, which)?,
        threads: 2,
        runs,
    };
    let report = vb_stt::bench(&config, &clips).context("running the STT benchmark")?;
    println!("{report}");
    Ok(())
}

/// What callers say to the reception robots, for the window sweep: short
/// answers, names, numbers and requests, as on a real call.
const WINDOW_CLIPS_EN: [&str; 20] = [
    "Yes.",
    "No, thank you.",
    "Hello?",
    "Who is this?",
    "My name is Anna Petrova.",
    "It's John Smith.",
    "Please call me back tomorrow.",
    "I'm not interested.",
    "Yes, that's correct.",
    "Can you call me later, I'm driving.",
    "My number is five five five, one two three, four five six seven.",
    "Plus one, two zero two, five five five, zero one four two.",
    "I would like to book a table for four people on Friday evening.",
    "I'm calling about the apartment on Baker Street.",
    "Next Tuesday at three in the afternoon would be fine.",
    "I need a plumber, the kitchen sink is leaking.",
    "We are in Boston, near the city center.",
    "How much does a consultation cost?",
    "Hello, I saw your advertisement and I would like to know more about the prices for a family of three.",
    "Sorry, could you repeat that?",
];

/// Russian lines for the multilingual models (spoken by the espeak voice).
const WINDOW_CLIPS_RU: [&str; 8] = [
    "Да.",
    "Нет, спасибо.",
    "Меня зовут Анна Петрова.",
    "Перезвоните мне завтра.",
    "Мой номер восемь девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь.",
    "Я хочу записаться на консультацию в пятницу.",
    "Нам нужен сантехник, течёт кран на кухне.",
    "Сколько стоит доставка в Москву?",
];

/// STT window floors: each clip spoken by the box's voices (or, with
/// `human`, recorded by people: [`vb_stt::corpus`]), sent through the phone
/// path (8 kHz, mu-law, back to 16 kHz), transcribed once per model,
/// temperature-fallback setting and floor.
pub fn stt_window(
    models: &Models,
    floors: &[u32],
    fallbacks: &[bool],
    which: &[String],
    human: bool,
) -> Result<()> {
    let mut clips = Vec::new();
    if human {
        use vb_stt::corpus;
        let en = corpus::pocketsphinx(&corpus::default_dir())?;
        let ru = corpus::asterisk_ru(&corpus::default_ru_dir(), &corpus::ASTERISK_RU_PHRASES)?;
        let langs = en
            .into_iter()
            .map(|r| (Lang::En, r))
            .chain(ru.into_iter().map(|r| (Lang::Ru, r)));
        for (lang, r) in langs {
            clips.push(BenchClip {
                name: r.id,
                audio_16k: corpus::phone_path(&r.pcm)?.samples,
                lang,
                reference: Some(r.text),
            });
        }
    } else {
        let mut tts = models.tts()?;
        let lines = WINDOW_CLIPS_EN
            .iter()
            .map(|t| (Lang::En, "en", *t))
            .chain(WINDOW_CLIPS_RU.iter().map(|t| (Lang::Ru, "ru", *t)));
        for (i, (lang, code, text)) in lines.enumerate() {
            let mut audio = Vec::new();
            for s in tts.stream(code, text, 8_000, CancelToken::new())? {
                audio.extend_from_slice(&s?.pcm.samples);
            }
            let phone = vb_stt::corpus::phone_path(&vb_audio::Pcm::new(8_000, audio))?;
            clips.push(BenchClip {
                name: format!("{code}{i:02}"),
                audio_16k: phone.samples,
                lang,
                reference: Some(text.to_string()),
            });
        }
    }
    let config = BenchConfig {
        models: stt_models(models, which)?,
        threads: 2,
        runs: 1,
    };
    println!(
        "| model | language | fallback | floor | clips | WER | clips with WER > {} | median, ms | slowest, ms | total, ms |",
        vb_stt::bench::BAD_CLIP_WER
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    // One sweep per language, so each language's floor has its own rows.
    for (lang, code) in [(Lang::En, "en"), (Lang::Ru, "ru")] {
        let these: Vec<BenchClip> = clips.iter().filter(|c| c.lang == lang).cloned().collect();
        if these.is_empty() {
            continue;
        }
        let rows = vb_stt::window_sweep(&config, &these, floors, fallbacks)
            .context("running the window sweep")?;
        for r in rows.into_iter().filter(|r| r.clips > 0) {
            println!(
                "| {} | {code} | {} | {} | {} | {:.3} | {} | {:.0} | {:.0} | {:.0} |",
                r.model,
                if r.fallback { "on" } else { "off" },
                r.floor,
                r.clips,
                r.wer,
                r.bad,
                r.median_ms,
                r.max_ms,
                r.total_ms
            );
        }
    }
    Ok(())
}

/// Model files for the STT benches: manifest names or paths (default:
/// whisper-tiny.en and whisper-base).
fn stt_models(models: &Models, which: &[String]) -> Result<Vec<std::path::PathBuf>> {
    if which.is_empty() {
        return Ok(vec![
            models.path("whisper-tiny.en")?,
            models.path("whisper-base")?,
        ]);
    }
    which
        .iter()
        .map(|m| {
            if m.contains('/') {
                Ok(std::path::PathBuf::from(m))
            } else {
                Ok(models.path(m)?)
            }
        })
        .collect()
}

/// TTS: load time, time to first audio and real-time factor, each reply
/// streamed sentence by sentence and with its first clause cut off
/// ([`vb_tts::TtsConfig::first_clause`]), side by side.
pub fn tts(models: &Models, runs: usize) -> Result<()> {
    let t0 = Instant::now();
    let mut tts = models.tts()?;
    tts.preload("en")?;
    tts.preload("ru")?;
    println!(
        "voices loaded in {} ms (Piper en + espeak ru)\n",
        t0.elapsed().as_millis()
    );
    let cases = [
        ("en", "one sentence", "Thank you, I have written down your request."),
        (
            "en",
            "three sentences",
            "Thank you, I have written down your request. Our manager will call you back within an hour. Is there anything else I can help you with?",
        ),
        ("ru", "one sentence", "Спасибо, я записала вашу заявку."),
        (
            "ru",
            "three sentences",
            "Спасибо, я записала вашу заявку. Менеджер перезвонит вам в течение часа. Могу я ещё чем-нибудь помочь?",
        ),
    ];
    println!(
        "| voice | reply | cut | first audio, ms | total, ms | audio, ms | real-time factor |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    let cuts = [(false, "sentences"), (true, "first clause")];
    for ((lang, label, text), (first_clause, cut)) in cases
        .iter()
        .flat_map(|case| cuts.iter().map(move |cut| (*case, *cut)))
    {
        tts.set_first_clause(first_clause);
        let mut firsts = Vec::new();
        let mut totals = Vec::new();
        let mut audio_ms = 0;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let mut first = None;
            let mut samples = 0usize;
            for s in tts.stream(lang, text, 22_050, CancelToken::new())? {
                let s = s?;
                first.get_or_insert(t.elapsed().as_secs_f64() * 1000.0);
                samples += s.pcm.samples.len();
            }
            totals.push(t.elapsed().as_secs_f64() * 1000.0);
            firsts.push(first.unwrap_or_default());
            audio_ms = samples as u64 * 1000 / 22_050;
        }
        let total = median(totals);
        let voice = tts.voice(lang)?.name().to_string();
        println!(
            "| {voice} | {label} | {cut} | {:.0} | {:.0} | {audio_ms} | {:.3} |",
            median(firsts),
            total,
            total / audio_ms.max(1) as f64
        );
    }
    Ok(())
}

/// Turn latency over whole demo calls, both languages, whisper base.
pub fn turn(models: &Models, calls: usize, threads: usize) -> Result<()> {
    let mut stt = models.transcriber("whisper-base", threads)?;
    let mut tts = models.tts()?;
    println!("| robot | caller turns | endpoint hangover, ms (median) | stt, ms (median) | first audio, ms (median) | end of speech -> first audio excl. hangover, ms: median / max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, language) in [
        ("reception-en", RobotLanguage::En),
        ("reception-ru", RobotLanguage::Ru),
    ] {
        let robot = Robot::builtin(name).context("built-in robot")?;
        let voice_name = tts.voice(language.code())?.name().to_string();
        let mut caller_voice = models.caller_voice(language.code())?;
        let (mut endpoint, mut stt_ms, mut first, mut processing) =
            (vec![], vec![], vec![], vec![]);
        for _ in 0..calls.max(1) {
            let mut caller = DemoCaller::new(language, caller_voice.as_mut());
            let mut engine = CallEngine::new(&mut stt, &mut tts, &robot, EngineConfig::default());
            let (record, _) = Simulation::new(
                &mut engine,
                &robot,
                voice_name.clone(),
                "whisper-base".into(),
            )
            .run(&mut caller)?;
            for t in record.turns.iter().skip(1) {
                endpoint.push(t.timings.endpoint_ms as f64);
                stt_ms.push(t.timings.stt_ms as f64);
                first.push(t.timings.first_audio_ms as f64);
                processing.push(t.timings.processing_ms as f64);
            }
        }
        let n = processing.len();
        let max = processing.iter().copied().fold(0.0, f64::max);
        println!(
            "| {name} | {n} | {:.0} | {:.0} | {:.0} | {:.0} / {max:.0} |",
            median(endpoint),
            median(stt_ms),
            median(first),
            median(processing)
        );
    }
    Ok(())
}

/// Percentile of an unsorted sample (nearest rank).
fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// One paced RTP stream over loopback UDP: per-packet send instants and
/// receive instants, for `frames` frames.
fn rtp_stream(frames: usize, paced: bool) -> Result<(Vec<Instant>, Vec<Instant>)> {
    use std::net::UdpSocket;
    use std::time::Duration;
    use vb_rtp::{packet, Pacer, RtpHeader};

    let rx = UdpSocket::bind("127.0.0.1:0").context("binding the loopback receiver")?;
    rx.set_read_timeout(Some(Duration::from_secs(2)))?;
    let to = rx.local_addr()?;
    let receiver = std::thread::spawn(move || {
        let mut arrivals = Vec::with_capacity(frames);
        let mut buf = [0u8; 1500];
        while arrivals.len() < frames {
            match rx.recv(&mut buf) {
                Ok(n) if packet::parse(&buf[..n]).is_ok() => arrivals.push(Instant::now()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        arrivals
    });
    let tx = UdpSocket::bind("127.0.0.1:0").context("binding the loopback sender")?;
    let start = Instant::now() + Duration::from_millis(20);
    let mut pacer = Pacer::g711(start);
    let mut sends = Vec::with_capacity(frames);
    let mut buf = Vec::with_capacity(200);
    let payload = [0xffu8; 160];
    for n in 0..frames {
        if paced {
            let deadline = pacer.deadline();
            let now = Instant::now();
            if deadline > now {
                std::thread::sleep(deadline - now);
            }
        } else if n > 0 {
            // The naive reference: sleep one period after each send.
            std::thread::sleep(Duration::from_millis(20));
        }
        let header = RtpHeader {
            marker: n == 0,
            payload_type: 0,
            sequence: n as u16,
            timestamp: pacer.timestamp(),
            ssrc: 0x7654_3210,
        };
        packet::write(&header, &payload, &mut buf);
        tx.send_to(&buf, to).context("sending on loopback")?;
        let now = Instant::now();
        pacer.sent(now);
        sends.push(now);
    }
    let arrivals = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))?;
    Ok((sends, arrivals))
}

/// RTP send pacing: deviation of packet intervals from 20 ms and drift over
/// the run, for the box's pacer (deadline n = start + n x 20 ms) and, side by
/// side, a naive `sleep(20 ms)` loop.
pub fn rtp(seconds: u64) -> Result<()> {
    let frames = (seconds.max(1) * 50) as usize;
    println!("| sender | packets | interval deviation p50 | p99 | max | drift after {seconds} s | receive interval deviation p99 |");
    println!("|---|---|---|---|---|---|---|");
    for (name, paced) in [("vb-rtp Pacer", true), ("naive sleep(20 ms)", false)] {
        let (sends, arrivals) = rtp_stream(frames, paced)?;
        let dev = |t: &[Instant]| -> Vec<f64> {
            t.windows(2)
                .map(|w| ((w[1] - w[0]).as_secs_f64() * 1000.0 - 20.0).abs())
                .collect()
        };
        let mut send_dev = dev(&sends);
        let mut recv_dev = dev(&arrivals);
        let drift_ms = match (sends.first(), sends.last()) {
            (Some(a), Some(b)) => {
                (*b - *a).as_secs_f64() * 1000.0 - 20.0 * (sends.len() - 1) as f64
            }
            _ => f64::NAN,
        };
        println!(
            "| {name} | {}/{} received | {:.3} ms | {:.3} ms | {:.3} ms | {drift_ms:+.1} ms | {:.3} ms |",
            arrivals.len(),
            sends.len(),
            percentile(&mut send_dev, 50.0),
            percentile(&mut send_dev, 99.0),
            percentile(&mut send_dev, 100.0),
            percentile(&mut recv_dev, 99.0),
        );
    }
    Ok(())
}

/// `voiceblock bench api`: `requests` GETs of `path`, `concurrency` at a
/// time, each on its own connection (as many small clients would); prints
/// the latency percentiles, the throughput and any failures.
/// `concurrency` clients asking `request` (one connection each) until
/// `requests` are done or `stop` is cancelled: the times of the 200s in ms,
/// and what the others got.
pub(crate) async fn load(
    addr: std::net::SocketAddr,
    request: String,
    concurrency: usize,
    requests: Option<usize>,
    stop: tokio_util::sync::CancellationToken,
) -> (Vec<f64>, Vec<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, request, stop) = (next.clone(), request.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut failures = Vec::new();
            while !stop.is_cancelled()
                && requests
                    .is_none_or(|n| next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n)
            {
                let t0 = Instant::now();
                let one = async {
                    let mut s = tokio::net::TcpStream::connect(addr).await?;
                    s.write_all(request.as_bytes()).await?;
                    let mut answer = Vec::new();
                    s.read_to_end(&mut answer).await?;
                    Ok::<_, std::io::Error>(answer)
                };
                match tokio::time::timeout(std::time::Duration::from_secs(30), one).await {
                    Ok(Ok(a)) if a.starts_with(b"HTTP/1.1 200") => {
                        times.push(t0.elapsed().as_secs_f64() * 1000.0)
                    }
                    Ok(Ok(a)) => {
                        failures.push(String::from_utf8_lossy(&a[..a.len().min(40)]).to_string())
                    }
                    Ok(Err(e)) => failures.push(e.to_string()),
                    Err(_) => failures.push("no answer in 30 s".into()),
                }
            }
            (times, failures)
        }));
    }
    let mut all = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        if let Ok((times, f)) = t.await {
            all.extend(times);
            failures.extend(f);
        }
    }
    (all, failures)
}

pub fn api(
    addr: std::net::SocketAddr,
    token: Option<String>,
    concurrency: usize,
    requests: usize,
    path: &str,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    let started = Instant::now();
    let (mut ms, failures) = rt.block_on(load(
        addr,
        request,
        concurrency,
        Some(requests),
        tokio_util::sync::CancellationToken::new(),
    ));
    let wall = started.elapsed().as_secs_f64();
    println!("| route | clients | requests ok | failed | p50 | p95 | p99 | max | requests/s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| `GET {path}` | {concurrency} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} |",
        ms.len(),
        failures.len(),
        percentile(&mut ms, 50.0),
        percentile(&mut ms, 95.0),
        percentile(&mut ms, 99.0),
        percentile(&mut ms, 100.0),
        ms.len() as f64 / wall.max(1e-9),
    );
    if let Some(first) = failures.first() {
        println!("first failure: {first}");
    }
    Ok(())
}
