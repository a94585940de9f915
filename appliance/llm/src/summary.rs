//! The post-call summary and interest class, stored with the call record:
//! written by the model when it is reachable, by rules otherwise. The
//! model's class passes the same rule as the tools (hot or warm needs a
//! number).

use crate::chunk::StreamItem;
use crate::client::ChatRequest;
use crate::error::LlmError;
use crate::memory::{Message, Role};
use crate::responder::Responder;
use crate::tools::{interest_code, parse_interest};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;
use vb_dialog::{Interest, Language, Lead};

/// Longest summary kept, in characters.
pub const MAX_SUMMARY_CHARS: usize = 600;

/// Who wrote the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummarySource {
    /// The language model.
    Llm,
    /// The rules in this module.
    Rules,
}

/// The summary stored with a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallSummary {
    /// A few sentences about the call.
    pub summary: String,
    /// The interest class.
    pub interest: Interest,
    /// Why that class.
    pub reason: String,
    /// Who wrote it.
    pub source: SummarySource,
}

/// The summary by rules, from the captured lead.
pub fn rules_summary(lead: &Lead, language: Language) -> CallSummary {
    let (none, fields) = match language {
        Language::En => (
            "nothing captured",
            ["name", "phone", "request", "dates", "city"],
        ),
        Language::Ru => (
            "ничего не записано",
            ["имя", "телефон", "запрос", "даты", "город"],
        ),
    };
    let parts: Vec<String> = [
        &lead.name,
        &lead.phone,
        &lead.request,
        &lead.dates,
        &lead.city,
    ]
    .iter()
    .zip(fields)
    .filter_map(|(v, k)| v.as_ref().map(|v| format!("{k}: {v}")))
    .collect();
    let mut summary = if parts.is_empty() {
        none.to_owned()
    } else {
        parts.join("; ")
    };
    if let Some(end) = lead.end {
        summary.push_str(&format!(
            " ({})",
            serde_json::to_value(end)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ));
    }
    let reason = match lead.interest {
        Interest::Hot => "number confirmed",
        Interest::Warm => "has a number, not confirmed or incomplete",
        Interest::Cold => "no callback number",
        Interest::NotInterested => "caller declined",
    };
    CallSummary {
        summary,
        interest: lead.interest,
        reason: reason.to_owned(),
        source: SummarySource::Rules,
    }
}

#[derive(Debug, Deserialize)]
struct RawSummary {
    summary: String,
    interest: String,
    #[serde(default)]
    reason: String,
}

/// Parses the model's JSON summary (the first `{...}` in the text) and
/// checks its class against the lead.
pub fn parse_llm_summary(text: &str, lead: &Lead) -> Option<CallSummary> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let raw: RawSummary = serde_json::from_str(text.get(start..=end)?).ok()?;
    let interest = parse_interest(&raw.interest)?;
    if matches!(interest, Interest::Hot | Interest::Warm) && lead.phone.is_none() {
        return None;
    }
    let summary: String = raw.summary.trim().chars().take(MAX_SUMMARY_CHARS).collect();
    if summary.is_empty() {
        return None;
    }
    Some(CallSummary {
        summary,
        interest,
        reason: raw.reason.trim().chars().take(200).collect(),
        source: SummarySource::Llm,
    })
}

impl Responder {
    /// The summary after the call: the model's when it answers usable JSON
    /// within `budget`, the rules' otherwise.
    pub async fn summarize(&self, budget: Duration) -> CallSummary {
        let lead = self.lead();
        let rules = rules_summary(&lead, self.robot().language);
        let Some(engine) = self.engine() else {
            return rules;
        };
        if engine
            .breaker
            .try_acquire(Instant::now().into_std())
            .is_err()
        {
            return rules;
        }
        let transcript: String = self
            .transcript()
            .iter()
            .map(|m| {
                format!(
                    "{}: {}\n",
                    if m.role == Role::User {
                        "Caller"
                    } else {
                        "Robot"
                    },
                    m.content
                )
            })
            .collect();
        let request = ChatRequest {
            messages: vec![
                Message {
                    role: Role::System,
                    content: format!(
                        "Summarise this phone call for the business owner. Answer only JSON: {{\"summary\": \"...\", \"interest\": \"hot|warm|cold|not_interested\", \"reason\": \"...\"}}. Captured phone: {}.",
                        lead.phone.as_deref().unwrap_or("none")
                    ),
                },
                Message {
                    role: Role::User,
                    content: transcript.chars().take(8000).collect(),
                },
            ],
            tools: None,
            max_tokens: Some(200),
        };
        let run = async {
            let mut stream = engine.client.stream(&request).await?;
            let mut text = String::new();
            while let Some(item) = stream.next().await? {
                if let StreamItem::Text(t) = item {
                    text.push_str(&t);
                }
            }
            Ok::<String, LlmError>(text)
        };
        match tokio::time::timeout(budget, run).await {
            Ok(Ok(text)) => {
                engine.breaker.on_success();
                parse_llm_summary(&text, &lead).unwrap_or(rules)
            }
            Ok(Err(e)) => {
                engine
                    .breaker
                    .on_failure(Instant::now().into_std(), e.retry_after());
                rules
            }
            Err(_) => rules,
        }
    }
}

/// The class's code, for records.
pub fn class_code(s: &CallSummary) -> &'static str {
    interest_code(s.interest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vb_dialog::{Dialog, Robot};

    fn lead_after(lines: &[&str]) -> Lead {
        let mut d = Dialog::new(&Robot::builtin("reception-en").unwrap());
        d.start();
        for l in lines {
            d.on_caller(l);
        }
        d.lead().clone()
    }

    #[test]
    fn rules_from_the_lead() {
        let s = rules_summary(
            &lead_after(&["I need a room", "John", "555 123 4567"]),
            Language::En,
        );
        assert_eq!(s.interest, Interest::Warm);
        assert!(s.summary.contains("+15551234567"), "{}", s.summary);
        assert_eq!(s.source, SummarySource::Rules);
        let s = rules_summary(&lead_after(&["not interested"]), Language::En);
        assert_eq!(s.interest, Interest::NotInterested);
        assert_eq!(class_code(&s), "not_interested");
    }

    #[test]
    fn llm_summary_is_checked() {
        let no_phone = lead_after(&["I need a room"]);
        let text = "Sure! {\"summary\": \"Wants a room.\", \"interest\": \"hot\", \"reason\": \"said so\"}";
        assert_eq!(parse_llm_summary(text, &no_phone), None);
        let with_phone = lead_after(&["I need a room", "John", "555 123 4567"]);
        let s = parse_llm_summary(text, &with_phone).unwrap();
        assert_eq!((s.interest, s.source), (Interest::Hot, SummarySource::Llm));
        assert_eq!(parse_llm_summary("no json", &with_phone), None);
        assert_eq!(
            parse_llm_summary("{\"summary\":\"x\",\"interest\":\"lukewarm\"}", &with_phone),
            None
        );
    }
}
