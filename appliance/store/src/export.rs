//! Lead export: CSV (RFC 4180 quoting) and JSON, for `voiceblock leads export`.

use std::io::Write;

use crate::{LeadRow, StoreError};

/// CSV columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "call_id",
    "stored_at",
    "caller",
    "robot",
    "name",
    "phone",
    "request",
    "dates",
    "city",
    "interest",
    "summary",
    "consent",
    "callback_later",
    "delivered",
];

/// Quotes a CSV field when it holds a comma, quote, or line break.
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// Writes leads as CSV with a header line.
pub fn write_csv<W: Write>(rows: &[LeadRow], mut out: W) -> Result<(), StoreError> {
    writeln!(out, "{}", CSV_COLUMNS.join(",")).map_err(StoreError::Export)?;
    for r in rows {
        let opt = |v: &Option<String>| csv_field(v.as_deref().unwrap_or(""));
        let fields = [
            csv_field(&r.call_id),
            csv_field(&r.stored_at),
            opt(&r.caller),
            csv_field(&r.robot),
            opt(&r.name),
            opt(&r.phone),
            opt(&r.request),
            opt(&r.dates),
            opt(&r.city),
            csv_field(&r.interest),
            opt(&r.summary),
            r.consent.to_string(),
            r.callback_later.to_string(),
            r.delivered.to_string(),
        ];
        writeln!(out, "{}", fields.join(",")).map_err(StoreError::Export)?;
    }
    out.flush().map_err(StoreError::Export)
}

/// Writes leads as a pretty-printed JSON array.
pub fn write_json<W: Write>(rows: &[LeadRow], mut out: W) -> Result<(), StoreError> {
    serde_json::to_writer_pretty(&mut out, rows).map_err(|source| StoreError::Json {
        what: "leads",
        source,
    })?;
    writeln!(out).map_err(StoreError::Export)?;
    out.flush().map_err(StoreError::Export)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> LeadRow {
        LeadRow {
            call_id: "c1".into(),
            stored_at: "2026-11-29T10:00:00.000Z".into(),
            caller: Some("+15550001".into()),
            robot: "reception-en".into(),
            name: Some("Ann \"Annie\" Lee".into()),
            phone: Some("+15551234567".into()),
            request: Some("two rooms, one\nwith a view".into()),
            dates: None,
            city: Some("Riga, LV".into()),
            interest: "hot".into(),
            summary: None,
            consent: true,
            callback_later: false,
            delivered: false,
        }
    }

    #[test]
    fn csv_quotes_commas_quotes_and_newlines() {
        let mut out = Vec::new();
        write_csv(&[row()], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.splitn(2, '\n');
        assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
        assert_eq!(
            lines.next().unwrap(),
            "c1,2026-11-29T10:00:00.000Z,+15550001,reception-en,\"Ann \"\"Annie\"\" Lee\",+15551234567,\"two rooms, one\nwith a view\",,\"Riga, LV\",hot,,true,false,false\n"
        );
    }

    #[test]
    fn json_round_trips() {
        let mut out = Vec::new();
        write_json(&[row()], &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["name"], "Ann \"Annie\" Lee");
        assert_eq!(v[0]["consent"], true);
    }
}
