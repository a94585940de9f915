//! Stopping whisper's loop as it starts. On a short answer followed by
//! silence whisper can say the answer again and again ("Yes, that is
//! correct. Yes, that is correct. Yes, ...") until the token cap, and the
//! loop then trips its temperature fallback, which decodes it all over
//! again: a 1.7 s answer took 2.2 s to recognise. Whisper lets a callback
//! see the tokens decoded so far before it picks the next one; once they
//! end in one phrase said twice in a row, the callback leaves only
//! end-of-text to pick. The echo filter then cuts the two copies to one.
//!
//! [`ends_in_echo`] is the pure rule; `EchoStop` and the trampoline wire it
//! to whisper.cpp.

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicU32, Ordering};

use whisper_rs::whisper_rs_sys;

/// Shortest phrase, in word tokens (punctuation tokens not counted), whose
/// immediate repeat stops the decode. Shorter repeats are the caller's
/// ("no, no"; digits dictated twice).
pub const MIN_ECHO_TOKENS: usize = 3;

/// Whether `words` (token texts lower-cased to their letters and digits,
/// empty ones left out) end with a phrase of at least [`MIN_ECHO_TOKENS`]
/// said twice back to back. The phrase must have a letter and two different
/// tokens: numbers dictated twice and one word over and over are left to
/// the caller's meaning and to the filter's word rule.
pub fn ends_in_echo<S: AsRef<str>>(words: &[S]) -> bool {
    let n = words.len();
    (MIN_ECHO_TOKENS..=n / 2).any(|k| {
        let first = &words[n - 2 * k..n - k];
        let second = &words[n - k..];
        first
            .iter()
            .zip(second)
            .all(|(a, b)| a.as_ref() == b.as_ref())
            && first
                .iter()
                .any(|w| w.as_ref().chars().any(char::is_alphabetic))
            && first.iter().any(|w| w.as_ref() != first[0].as_ref())
    })
}

/// A token's text as the rule compares it: letters and digits, lower-cased
/// (" Yes," and "Yes" are the same word).
fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Per-decode state of the callback: how many times it ended a loop.
#[derive(Debug, Default)]
pub(crate) struct EchoStop {
    pub(crate) stops: AtomicU32,
}

/// whisper.cpp's logits filter: `user_data` is an [`EchoStop`].
///
/// # Safety
/// whisper.cpp calls it with its own context, the `n_tokens` tokens decoded
/// so far and the `n_vocab` logits of the next token; `user_data` must point
/// to an `EchoStop` that outlives the `whisper_full` call.
pub(crate) unsafe extern "C" fn echo_stop_trampoline(
    ctx: *mut whisper_rs_sys::whisper_context,
    _state: *mut whisper_rs_sys::whisper_state,
    tokens: *const whisper_rs_sys::whisper_token_data,
    n_tokens: c_int,
    logits: *mut f32,
    user_data: *mut c_void,
) {
    let Ok(n) = usize::try_from(n_tokens) else {
        return;
    };
    if ctx.is_null()
        || tokens.is_null()
        || logits.is_null()
        || user_data.is_null()
        || n < 2 * MIN_ECHO_TOKENS
    {
        return;
    }
    // SAFETY: pointers and lengths as whisper.cpp documents them (above).
    let (tokens, eot, n_vocab) = unsafe {
        (
            std::slice::from_raw_parts(tokens, n),
            whisper_rs_sys::whisper_token_eot(ctx),
            whisper_rs_sys::whisper_n_vocab(ctx),
        )
    };
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| t.id >= 0 && t.id < eot)
        .filter_map(|t| {
            // SAFETY: a text token id of this context; whisper.cpp returns a
            // NUL-terminated string it owns, valid while the context lives.
            let p = unsafe { whisper_rs_sys::whisper_token_to_str(ctx, t.id) };
            (!p.is_null()).then(|| normalise(&unsafe { CStr::from_ptr(p) }.to_string_lossy()))
        })
        .filter(|w| !w.is_empty())
        .collect();
    if !ends_in_echo(&words) {
        return;
    }
    let (Ok(n_vocab), Ok(eot)) = (usize::try_from(n_vocab), usize::try_from(eot)) else {
        return;
    };
    // SAFETY: whisper.cpp passes the next token's logits, n_vocab of them.
    let logits = unsafe { std::slice::from_raw_parts_mut(logits, n_vocab) };
    for (i, l) in logits.iter_mut().enumerate() {
        if i != eot {
            *l = f32::NEG_INFINITY;
        }
    }
    // SAFETY: user_data is the EchoStop the transcriber set.
    let stop = unsafe { &*(user_data as *const EchoStop) };
    stop.stops.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace()
            .map(normalise)
            .filter(|w| !w.is_empty())
            .collect()
    }

    #[test]
    fn a_phrase_said_twice_in_a_row_is_an_echo() {
        for text in [
            "Yes, that is correct. Yes, that is correct.",
            "yes that is correct? Yes, that is correct?",
            "Please call me back tomorrow. Please call me back tomorrow",
            "My number is 555 123. My number is 555 123",
            "Перезвоните мне завтра. Перезвоните мне завтра.",
        ] {
            assert!(ends_in_echo(&words(text)), "{text}");
        }
    }

    #[test]
    fn callers_repeats_and_numbers_are_not_echoes() {
        for text in [
            "Yes that is correct",
            "no no",
            "five five five five five five",
            "555 123 555 123",
            "да да да да да да",
            "I want I want to book a table",
            "Yes, that is correct. Yes, that is",
            "",
        ] {
            assert!(!ends_in_echo(&words(text)), "{text}");
        }
    }
}
