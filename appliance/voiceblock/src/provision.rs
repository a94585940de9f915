//! `voiceblock provision`: writes the box's config and its secrets file
//! (mode 0600 from creation on, optionally owned by the service user), after
//! validating them exactly as the daemon will.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::{
    ApiSection, DeviceSection, LlmSection, MqttSection, RawConfig, RobotsSection, Secrets,
    SipSection, StoreSection,
};

/// Everything `provision` takes from the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct ProvisionArgs {
    /// Config file to write (default: $VOICEBLOCK_CONFIG or /etc/voiceblock/voiceblock.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Secrets file (default: secrets.toml beside the config).
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// This box's fleet id (MQTT username and topic segment).
    #[arg(long)]
    pub device_id: String,
    /// ALSA device of a local handset (hw:1,0, plughw:CARD=Headset).
    #[arg(long)]
    pub alsa_device: Option<String>,
    /// SIP registrar `host[:port]`; omit to take direct calls only.
    #[arg(long)]
    pub sip_registrar: Option<String>,
    /// SIP account user part.
    #[arg(long)]
    pub sip_user: String,
    /// SIP account domain.
    #[arg(long)]
    pub sip_domain: String,
    /// SIP password ("-" reads one line from stdin, keeping it out of ps and shell history).
    #[arg(long)]
    pub sip_password: Option<String>,
    /// Local SIP address (default 0.0.0.0:5060).
    #[arg(long)]
    pub sip_listen: Option<String>,
    /// Concurrent calls (default 2).
    #[arg(long)]
    pub max_calls: Option<u32>,
    /// MQTT broker host:port; omit for a box without fleet sync.
    #[arg(long)]
    pub mqtt_broker: Option<String>,
    /// Plain TCP to the broker instead of TLS.
    #[arg(long)]
    pub mqtt_no_tls: bool,
    /// CA bundle (PEM) for the broker's certificate.
    #[arg(long, value_name = "FILE")]
    pub mqtt_ca: Option<PathBuf>,
    /// MQTT username (default: the device id).
    #[arg(long)]
    pub mqtt_username: Option<String>,
    /// MQTT password ("-" reads one line from stdin).
    #[arg(long)]
    pub mqtt_password: Option<String>,
    /// HTTP API address (default 127.0.0.1:8080).
    #[arg(long)]
    pub api_listen: Option<String>,
    /// API bearer token (default: 32 random bytes, printed once).
    #[arg(long)]
    pub api_token: Option<String>,
    /// OpenAI-compatible LLM base URL (http://127.0.0.1:8081/v1).
    #[arg(long)]
    pub llm_url: Option<String>,
    /// LLM model name.
    #[arg(long)]
    pub llm_model: Option<String>,
    /// SQLite store path.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// Operator robots folder.
    #[arg(long, value_name = "DIR")]
    pub robots_dir: Option<PathBuf>,
    /// The answering robot (built-in name or a folder under the robots dir).
    #[arg(long)]
    pub robot: Option<String>,
    /// Give the secrets file to this user (the service runs as `voiceblock`; needs root).
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
    /// Replace existing config and secrets files.
    #[arg(long)]
    pub force: bool,
}

/// What was written.
#[derive(Debug)]
pub struct Provisioned {
    /// The config file.
    pub config: PathBuf,
    /// The secrets file.
    pub secrets: PathBuf,
    /// Whether the API token was generated (then it is printed once).
    pub generated_token: Option<String>,
}

/// A fresh API token: 32 random bytes from the kernel, hex (64 characters).
pub fn generate_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the API token")?;
    Ok(hex::encode(bytes))
}

fn secret_arg(value: Option<String>, what: &str) -> Result<Option<String>> {
    match value.as_deref() {
        Some("-") => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .with_context(|| format!("reading the {what} from stdin"))?;
            let line = line.trim_end_matches(['\n', '\r']).to_owned();
            if line.is_empty() {
                bail!("the {what} read from stdin is empty");
            }
            Ok(Some(line))
        }
        _ => Ok(value),
    }
}

/// Builds, validates and writes the config and secrets.
pub fn provision(args: ProvisionArgs) -> Result<Provisioned> {
    let raw = RawConfig {
        secrets: args.secrets.clone(),
        device: DeviceSection {
            id: args.device_id.clone(),
            alsa_device: args.alsa_device.clone(),
        },
        sip: SipSection {
            registrar: args.sip_registrar.clone(),
            user: args.sip_user.clone(),
            domain: args.sip_domain.clone(),
            listen: args
                .sip_listen
                .clone()
                .unwrap_or_else(|| "0.0.0.0:5060".into()),
            max_calls: args.max_calls.unwrap_or(2),
            ring_ms: 0,
        },
        mqtt: args.mqtt_broker.clone().map(|broker| MqttSection {
            broker,
            tls: !args.mqtt_no_tls,
            ca_file: args.mqtt_ca.clone(),
            username: args.mqtt_username.clone(),
        }),
        api: match &args.api_listen {
            Some(l) => ApiSection { listen: l.clone() },
            None => ApiSection::default(),
        },
        llm: args.llm_url.clone().map(|url| LlmSection {
            url,
            model: args.llm_model.clone(),
            timeout_ms: 8000,
        }),
        store: match &args.store {
            Some(p) => StoreSection { path: p.clone() },
            None => StoreSection::default(),
        },
        robots: {
            let mut r = RobotsSection::default();
            if let Some(d) = &args.robots_dir {
                r.dir = d.clone();
            }
            if let Some(n) = &args.robot {
                r.default = n.clone();
            }
            r
        },
        recording: None,
    };
    let generated = match &args.api_token {
        Some(_) => None,
        None => Some(generate_token()?),
    };
    let secrets = Secrets {
        sip_password: secret_arg(args.sip_password.clone(), "SIP password")?,
        mqtt_password: secret_arg(args.mqtt_password.clone(), "MQTT password")?,
        api_token: args
            .api_token
            .clone()
            .or_else(|| generated.clone())
            .unwrap_or_default(),
    };

    let config_path = args
        .config
        .clone()
        .unwrap_or_else(crate::config::default_path);
    let secrets_path = raw.secrets_path(&config_path);
    // The daemon's own validation: provision never writes a config it would refuse.
    raw.validate(&config_path, secrets.clone())
        .context("the provisioned config would not be accepted")?;

    for p in [&config_path, &secrets_path] {
        if !args.force && fs::symlink_metadata(p).is_ok() {
            bail!(
                "{} exists: pass --force to replace it (the old file is overwritten)",
                p.display()
            );
        }
    }
    let owner = match &args.owner {
        Some(name) => Some(lookup_user(name)?),
        None => None,
    };

    let header = "# VoiceBlock configuration, written by `voiceblock provision`.\n\
                  # Secrets (passwords, API token) are in the secrets file.\n\n";
    let config_text = format!(
        "{header}{}",
        toml::to_string(&raw).context("serializing the config")?
    );
    let secrets_text = format!(
        "# VoiceBlock secrets: keep mode 0600.\n\n{}",
        toml::to_string(&secrets).context("serializing the secrets")?
    );
    write_atomic(&config_path, config_text.as_bytes(), 0o644, None)?;
    write_atomic(&secrets_path, secrets_text.as_bytes(), 0o600, owner)?;
    Ok(Provisioned {
        config: config_path,
        secrets: secrets_path,
        generated_token: generated,
    })
}

/// uid and gid of a user name.
pub fn lookup_user(name: &str) -> Result<(u32, u32)> {
    let cname = std::ffi::CString::new(name).context("user name contains a NUL byte")?;
    let mut pwd: libc::passwd = unsafe_zeroed_passwd();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `cname` is NUL-terminated,
    // `pwd` and `result` are live locals, `buf` is a live buffer of the length
    // passed. getpwnam_r writes only into them.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 {
        bail!(
            "looking up user {name:?}: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    if result.is_null() {
        bail!("no user {name:?} on this system (the recipe creates `voiceblock`)");
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: libc::passwd is a plain C struct of integers and raw pointers,
    // for which all-zero bytes are a valid (null) value.
    unsafe { std::mem::zeroed() }
}

/// This process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Writes `path` via a temp file in the same directory, created with `mode`
/// (so a secret is never readable by others, even for a moment), then
/// renamed over the target.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        // The umask may have cleared bits of `mode`; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {:o} {}", mode, tmp.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                .with_context(|| format!("giving {} to uid {uid} (needs root)", path.display()))?;
        }
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
