//! The web console: plain HTML, CSS and JS compiled into the binary and
//! served at `/` with a strict Content-Security-Policy (nothing from other
//! origins, no inline script). The pages read the same `/api/` routes as
//! any client, with the token the operator types once.

use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use sha2::{Digest, Sha256};

use crate::Shared;

/// Content-Security-Policy of every console response: scripts, styles and
/// connections (fetch, the talk WebSocket) only from the box itself; no
/// inline script, no frames, no forms posting elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; media-src 'self' blob:; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Where it is served.
    pub path: &'static str,
    /// Its Content-Type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// Every console file.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../console/index.html"),
    },
    Asset {
        path: "/console/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/app.js"),
    },
    Asset {
        path: "/console/talk-worklet.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/talk-worklet.js"),
    },
    Asset {
        path: "/console/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/style.css"),
    },
    Asset {
        path: "/favicon.ico",
        content_type: "image/svg+xml",
        body: include_bytes!("../console/favicon.svg"),
    },
];

/// Strong ETags of the assets (SHA-256 prefix), computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body);
                let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

fn serve(index: usize, request: &Request) -> Response {
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let fresh = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = response.headers_mut();
    // Names carry no version: revalidate every time (a 304 costs one
    // round trip on loopback or the LAN), so an upgraded box never serves
    // a stale script next to a new API.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The console's routes: open (the files hold no data; the data routes
/// need the token).
pub(crate) fn routes() -> Vec<(&'static str, MethodRouter<Arc<Shared>>)> {
    ASSETS
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let handler = get(move |request: Request| async move { serve(i, &request) });
            (a.path, handler)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_use_no_other_origin_and_no_inline_script() {
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.body);
            for bad in ["http://", "https://", "//cdn", "eval(", "new Function"] {
                // The SVG's xmlns is a name, not a fetch.
                if a.path == "/favicon.ico" && bad == "http://" {
                    continue;
                }
                assert!(!text.contains(bad), "{} contains {bad:?}", a.path);
            }
            if a.content_type.starts_with("text/html") {
                assert!(!text.contains("<script>"), "inline script in {}", a.path);
                assert!(!has_inline_handler(&text), "inline handler in {}", a.path);
                assert!(!text.contains("style=\""), "inline style in {}", a.path);
            }
        }
    }

    /// ` onclick=`, ` onload=`, ...
    fn has_inline_handler(html: &str) -> bool {
        html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name > 0 && rest[name..].starts_with('=')
        })
    }

    #[test]
    fn etags_differ_per_asset() {
        let e = etags();
        assert_eq!(e.len(), ASSETS.len());
        for (i, a) in e.iter().enumerate() {
            assert!(e[i + 1..].iter().all(|b| b != a));
        }
    }
}
