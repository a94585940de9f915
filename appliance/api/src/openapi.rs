//! The hand-written OpenAPI 3.1 document served at `GET /api/openapi.json`.
//! A unit test holds it to the route table: every route documented, nothing
//! documented that is not served, and the security of each matching.

/// The document (JSON).
pub const DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {
    "title": "VoiceBlock box API",
    "version": "1",
    "description": "Calls, leads, robots, health and metrics of one VoiceBlock box. Every /api/ route but /api/health/live needs `Authorization: Bearer <token>`; repeated failures from one address get 429 with Retry-After; requests beyond the in-flight limit get 503 with Retry-After. Errors are JSON: {\"error\": \"...\", \"limit\": ...} (limit only when a limit was hit). Also served, outside this document: the web console at / (HTML, open) and the talk page's WebSocket at /api/talk (token as the `token` query parameter)."
  },
  "components": {
    "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
    "parameters": {
      "limit": { "name": "limit", "in": "query", "required": false, "description": "How many items, 1..=1000 (default 100).", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } },
      "since": { "name": "since", "in": "query", "required": false, "description": "Only items at or after this time: RFC 3339 or Unix milliseconds.", "schema": { "type": "string" } },
      "id": { "name": "id", "in": "path", "required": true, "description": "Call id.", "schema": { "type": "string" } }
    },
    "schemas": {
      "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" }, "limit": {} } },
      "Check": { "type": "object", "required": ["name", "ok"], "properties": { "name": { "type": "string" }, "ok": { "type": "boolean" }, "reason": { "type": "string" } } },
      "Ready": { "type": "object", "properties": { "ready": { "type": "boolean" }, "reasons": { "type": "array", "items": { "type": "string" } }, "checks": { "type": "array", "items": { "$ref": "#/components/schemas/Check" } } } },
      "CallSummary": { "type": "object", "properties": { "id": { "type": "string" }, "caller": { "type": ["string", "null"] }, "started_at": { "type": "integer", "description": "Unix ms" }, "ended_at": { "type": "integer", "description": "Unix ms" }, "end_reason": { "type": "string" }, "robot": { "type": "string" }, "turns": { "type": "integer" } } },
      "Turn": { "type": "object", "properties": { "index": { "type": "integer" }, "speaker": { "enum": ["robot", "caller"] }, "caller_text": { "type": "string" }, "robot_text": { "type": "string" }, "timings": { "type": "object" } } },
      "Call": { "type": "object", "properties": { "id": { "type": "string" }, "caller": { "type": ["string", "null"] }, "started_at": { "type": "integer" }, "ended_at": { "type": "integer" }, "stored_at": { "type": "integer" }, "end_reason": { "type": "string" }, "robot": { "type": "string" }, "mode": { "type": "string" }, "language": { "type": "string" }, "has_lead": { "type": "boolean" }, "turns": { "type": "array", "items": { "$ref": "#/components/schemas/Turn" } } } },
      "Lead": { "type": "object", "properties": { "call_id": { "type": "string" }, "stored_at": { "type": "string", "format": "date-time" }, "caller": { "type": ["string", "null"] }, "robot": { "type": "string" }, "name": { "type": ["string", "null"] }, "phone": { "type": ["string", "null"] }, "request": { "type": ["string", "null"] }, "dates": { "type": ["string", "null"] }, "city": { "type": ["string", "null"] }, "interest": { "type": "string" }, "summary": { "type": ["string", "null"] }, "consent": { "type": "boolean" }, "callback_later": { "type": "boolean" }, "delivered": { "type": "boolean" } } },
      "RobotValidation": { "type": "object", "properties": { "valid": { "type": "boolean" }, "name": { "type": "string" }, "language": { "type": "string" }, "mode": { "type": "string" }, "errors": { "type": "array", "items": { "type": "string" } } } }
    },
    "responses": {
      "BadRequest": { "description": "Bad parameter or body; the error names it and its limit.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unauthorized": { "description": "Missing or wrong bearer token (WWW-Authenticate: Bearer).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "TooManyRequests": { "description": "Too many failed authentications from this address; see Retry-After.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "NotFound": { "description": "No such item.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    }
  },
  "security": [ { "bearer": [] } ],
  "paths": {
    "/api/health/live": {
      "get": { "summary": "The process is up and serving HTTP.", "security": [], "responses": { "200": { "description": "Live.", "content": { "application/json": { "schema": { "type": "object" } } } } } }
    },
    "/api/health/ready": {
      "get": { "summary": "Ready to answer calls: disk space, the store, plus the daemon's checks (models, SIP, MQTT).", "responses": {
        "200": { "description": "Ready.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Ready" } } } },
        "503": { "description": "Not ready; reasons lists the failed checks.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Ready" } } } },
        "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/calls": {
      "get": { "summary": "Recent calls, newest first.", "parameters": [ { "$ref": "#/components/parameters/limit" }, { "$ref": "#/components/parameters/since" } ], "responses": {
        "200": { "description": "Calls.", "content": { "application/json": { "schema": { "type": "object", "properties": { "calls": { "type": "array", "items": { "$ref": "#/components/schemas/CallSummary" } } } } } } },
        "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/calls/{id}": {
      "get": { "summary": "One call with its turns and their timings.", "parameters": [ { "$ref": "#/components/parameters/id" } ], "responses": {
        "200": { "description": "The call.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Call" } } } },
        "404": { "$ref": "#/components/responses/NotFound" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/leads": {
      "get": { "summary": "Leads, oldest first; `more` says the limit cut the list (ask again with since = the last stored_at).", "parameters": [ { "$ref": "#/components/parameters/limit" }, { "$ref": "#/components/parameters/since" } ], "responses": {
        "200": { "description": "Leads.", "content": { "application/json": { "schema": { "type": "object", "properties": { "leads": { "type": "array", "items": { "$ref": "#/components/schemas/Lead" } }, "more": { "type": "boolean" } } } } } },
        "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/leads.csv": {
      "get": { "summary": "Leads as CSV (RFC 4180), all of them or since a time.", "parameters": [ { "$ref": "#/components/parameters/since" } ], "responses": {
        "200": { "description": "CSV with a header line.", "content": { "text/csv": { "schema": { "type": "string" } } } },
        "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/leads/{id}": {
      "get": { "summary": "The lead of one call.", "parameters": [ { "$ref": "#/components/parameters/id" } ], "responses": {
        "200": { "description": "The lead.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Lead" } } } },
        "404": { "$ref": "#/components/responses/NotFound" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/robots": {
      "get": { "summary": "Robot folders on the box and the built-in robots, each loaded and validated.", "responses": {
        "200": { "description": "Robots.", "content": { "application/json": { "schema": { "type": "object", "properties": { "robots": { "type": "array", "items": { "type": "object", "properties": { "name": { "type": "string" }, "source": { "enum": ["folder", "builtin"] }, "valid": { "type": "boolean" }, "language": { "type": "string" }, "mode": { "type": "string" }, "errors": { "type": "array", "items": { "type": "string" } } } } } } } } } },
        "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/robots/validate": {
      "post": { "summary": "Validate a robot folder by name, or robot.toml text; answers every problem found.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": { "name": { "type": "string", "pattern": "^[a-z0-9_-]{1,64}$" }, "toml": { "type": "string", "maxLength": 65536 } } } } } },
        "responses": {
        "200": { "description": "Validation result (valid or not).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/RobotValidation" } } } },
        "400": { "$ref": "#/components/responses/BadRequest" }, "404": { "$ref": "#/components/responses/NotFound" },
        "413": { "description": "Body over the limit (1 MiB by default); the error names it.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "415": { "description": "Content-Type is not application/json.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/config": {
      "get": { "summary": "The box's config in force, secrets left out (tokens and passwords are shown only as whether they are set).", "responses": { "200": { "description": "Config.", "content": { "application/json": { "schema": { "type": "object" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "404": { "$ref": "#/components/responses/NotFound" } } }
    },
    "/api/openapi.json": {
      "get": { "summary": "This document.", "responses": { "200": { "description": "OpenAPI 3.1.", "content": { "application/json": { "schema": { "type": "object" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" } } }
    },
    "/metrics": {
      "get": { "summary": "Prometheus metrics (OpenMetrics text). Needs the token only when metrics_public is off.", "security": [ {}, { "bearer": [] } ], "responses": { "200": { "description": "Metrics.", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" } } }
    }
  }
}
"##;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::routes::{routes, Access};

    fn document() -> serde_json::Value {
        serde_json::from_str(DOCUMENT).unwrap()
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        let served: BTreeSet<_> = routes()
            .iter()
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn documented_security_matches_each_route() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        for r in routes() {
            let op = &doc["paths"][r.path][r.method];
            let security = op.get("security");
            match r.access {
                Access::Open => assert_eq!(security, Some(&serde_json::json!([])), "{}", r.path),
                Access::Token => assert!(security.is_none(), "{} inherits bearer", r.path),
                Access::Metrics => assert!(security.is_some(), "{}", r.path),
            }
            assert!(op["responses"]["200"].is_object(), "{} has no 200", r.path);
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        fn walk(v: &serde_json::Value, doc: &serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                        let pointer = r.strip_prefix('#').unwrap();
                        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                    }
                    m.values().for_each(|v| walk(v, doc));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, doc)),
                _ => {}
            }
        }
        walk(&doc, &doc);
    }
}
