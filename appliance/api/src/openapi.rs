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
      "id": { "name": "id", "in": "path", "required": true, "description": "Call id.", "schema": { "type": "string" } },
      "job": { "name": "id", "in": "path", "required": true, "description": "Job id.", "schema": { "type": "string" } },
      "offset": { "name": "offset", "in": "query", "required": false, "description": "Items to skip, 0..=1000000.", "schema": { "type": "integer", "minimum": 0, "maximum": 1000000, "default": 0 } }
    },
    "schemas": {
      "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" }, "limit": {} } },
      "Check": { "type": "object", "required": ["name", "ok"], "properties": { "name": { "type": "string" }, "ok": { "type": "boolean" }, "reason": { "type": "string" } } },
      "Ready": { "type": "object", "properties": { "ready": { "type": "boolean" }, "reasons": { "type": "array", "items": { "type": "string" } }, "checks": { "type": "array", "items": { "$ref": "#/components/schemas/Check" } } } },
      "CallSummary": { "type": "object", "properties": { "id": { "type": "string" }, "caller": { "type": ["string", "null"] }, "started_at": { "type": "integer", "description": "Unix ms" }, "ended_at": { "type": "integer", "description": "Unix ms" }, "end_reason": { "type": "string" }, "robot": { "type": "string" }, "turns": { "type": "integer" } } },
      "Turn": { "type": "object", "properties": { "index": { "type": "integer" }, "speaker": { "enum": ["robot", "caller"] }, "caller_text": { "type": "string" }, "robot_text": { "type": "string" }, "timings": { "type": "object" } } },
      "Call": { "type": "object", "properties": { "id": { "type": "string" }, "caller": { "type": ["string", "null"] }, "started_at": { "type": "integer" }, "ended_at": { "type": "integer" }, "stored_at": { "type": "integer" }, "end_reason": { "type": "string" }, "robot": { "type": "string" }, "mode": { "type": "string" }, "language": { "type": "string" }, "has_lead": { "type": "boolean" }, "audio": { "type": ["string", "null"], "description": "URL path of the call's audio (GET it with the token) when the call record has a recording; else null." }, "turns": { "type": "array", "items": { "$ref": "#/components/schemas/Turn" } } } },
      "Lead": { "type": "object", "properties": { "call_id": { "type": "string" }, "stored_at": { "type": "string", "format": "date-time" }, "caller": { "type": ["string", "null"] }, "robot": { "type": "string" }, "name": { "type": ["string", "null"] }, "phone": { "type": ["string", "null"] }, "request": { "type": ["string", "null"] }, "dates": { "type": ["string", "null"] }, "city": { "type": ["string", "null"] }, "interest": { "type": "string" }, "summary": { "type": ["string", "null"] }, "consent": { "type": "boolean" }, "callback_later": { "type": "boolean" }, "delivered": { "type": "boolean" } } },
      "JobRequest": { "type": "object", "additionalProperties": false, "required": ["number"], "properties": { "number": { "type": "string", "description": "E.164 (+ and 7 to 15 digits; spaces, dashes, dots and parentheses are dropped) or a SIP URI." }, "name": { "type": "string", "maxLength": 200 }, "note": { "type": "string", "maxLength": 200 }, "priority": { "type": "integer", "minimum": -100, "maximum": 100, "default": 0, "description": "Higher is called first." }, "not_before": { "type": "string", "description": "RFC 3339 or Unix ms; now if absent." } } },
      "Job": { "type": "object", "properties": { "id": { "type": "string" }, "number": { "type": "string" }, "name": { "type": ["string", "null"] }, "note": { "type": ["string", "null"] }, "priority": { "type": "integer" }, "state": { "enum": ["queued", "dialing", "done", "failed", "cancelled", "blocked"] }, "attempts": { "type": "integer" }, "next_at": { "type": "string", "format": "date-time" }, "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" }, "last_result": { "type": ["string", "null"], "description": "answered, busy, no_answer, declined, bad_number, failed, interrupted" }, "call_id": { "type": ["string", "null"] }, "reason": { "type": ["string", "null"] } } },
      "Attempt": { "type": "object", "properties": { "n": { "type": "integer" }, "started_at": { "type": "string", "format": "date-time" }, "ended_at": { "type": ["string", "null"], "format": "date-time" }, "result": { "type": ["string", "null"] }, "sip_code": { "type": ["integer", "null"] }, "call_id": { "type": ["string", "null"] }, "detail": { "type": ["string", "null"] } } },
      "QueueStats": { "type": "object", "properties": { "running": { "type": "boolean" }, "queued": { "type": "integer" }, "dialing": { "type": "integer" }, "done": { "type": "integer" }, "failed": { "type": "integer" }, "cancelled": { "type": "integer" }, "blocked": { "type": "integer" }, "attempts": { "type": "integer" }, "answered": { "type": "integer" }, "dnc": { "type": "integer" }, "next_at": { "type": ["string", "null"], "format": "date-time" } } },
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
      "get": { "summary": "Calls, newest first (by end time), filtered: every parameter given narrows the list; an empty robot, result, caller, lead or direction matches every call. An unknown parameter is a 400.", "parameters": [ { "$ref": "#/components/parameters/limit" }, { "$ref": "#/components/parameters/offset" },
        { "name": "since", "in": "query", "required": false, "description": "Only calls that ended at or after this time: RFC 3339 or Unix milliseconds.", "schema": { "type": "string" } },
        { "name": "until", "in": "query", "required": false, "description": "Only calls that ended before this time: RFC 3339 or Unix milliseconds.", "schema": { "type": "string" } },
        { "name": "robot", "in": "query", "required": false, "description": "Only calls taken by this robot (exact name).", "schema": { "type": "string", "maxLength": 128 } },
        { "name": "result", "in": "query", "required": false, "description": "Only calls that ended for this reason (the call's end_reason, exact).", "schema": { "type": "string", "maxLength": 128 } },
        { "name": "caller", "in": "query", "required": false, "description": "Only calls whose caller contains this text (case-sensitive; calls with no known caller never match).", "schema": { "type": "string", "maxLength": 128 } },
        { "name": "lead", "in": "query", "required": false, "description": "true: only calls that produced a lead; false: only calls that did not.", "schema": { "enum": ["true", "false"] } },
        { "name": "direction", "in": "query", "required": false, "description": "outbound: calls the box placed (the outbound queue, test calls: the call record's direction is outbound, or a queue job or attempt links to the call); inbound: every other call (SIP inbound, the handset, the console's talk page).", "schema": { "enum": ["inbound", "outbound"] } } ], "responses": {
        "200": { "description": "Calls.", "content": { "application/json": { "schema": { "type": "object", "properties": { "calls": { "type": "array", "items": { "$ref": "#/components/schemas/CallSummary" } } } } } } },
        "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/calls/{id}": {
      "get": { "summary": "One call with its turns and their timings.", "parameters": [ { "$ref": "#/components/parameters/id" } ], "responses": {
        "200": { "description": "The call.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Call" } } } },
        "404": { "$ref": "#/components/responses/NotFound" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/calls/{id}/audio": {
      "get": { "summary": "The call's recording as WAV (the box records when [recording] is on in its config). One `Range: bytes=a-b` (or a-, -n) is honoured for seeking: 206 with Content-Range; several ranges or a malformed one get the whole file.", "parameters": [ { "$ref": "#/components/parameters/id" }, { "name": "Range", "in": "header", "required": false, "schema": { "type": "string" } } ], "responses": {
        "200": { "description": "The whole file (Content-Length, Accept-Ranges: bytes, Content-Disposition: inline; filename=\"<call id>.wav\").", "content": { "audio/wav": { "schema": { "type": "string", "format": "binary" } } } },
        "206": { "description": "The range asked for, with Content-Range.", "content": { "audio/wav": { "schema": { "type": "string", "format": "binary" } } } },
        "404": { "description": "Unknown call; call recording is off on this box; the call has no recording; or its file is no longer on the box (removed by retention). The error says which.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "416": { "description": "The range starts past the end; Content-Range: bytes */<size>, and limit is the size.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "500": { "description": "Corrupt record: the recording's file name is not a plain name (empty, over 255 bytes, /, \\, .., NUL), or it is not a WAV file.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/calls/test": {
      "post": { "summary": "Place a test call now: the box dials the target and runs its robot (outside the queue: no window, no retries). 202 when queued; 503 when the box is busy or serves no SIP agent.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "required": ["target"], "properties": { "target": { "type": "string", "description": "E.164 number or SIP URI." } } } } } },
        "responses": {
        "202": { "description": "Queued for the SIP agent.", "content": { "application/json": { "schema": { "type": "object", "properties": { "queued": { "type": "string" } } } } } },
        "400": { "$ref": "#/components/responses/BadRequest" },
        "503": { "description": "Busy (test calls waiting) or no SIP agent.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
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
    "/api/queue": {
      "get": { "summary": "Outbound jobs, newest first.", "parameters": [ { "name": "state", "in": "query", "required": false, "schema": { "enum": ["queued", "dialing", "done", "failed", "cancelled", "blocked"] } }, { "$ref": "#/components/parameters/limit" }, { "$ref": "#/components/parameters/offset" } ], "responses": {
        "200": { "description": "Jobs.", "content": { "application/json": { "schema": { "type": "object", "properties": { "jobs": { "type": "array", "items": { "$ref": "#/components/schemas/Job" } } } } } } },
        "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } },
      "post": { "summary": "Queue one number to call. The robot's [outbound] table sets the calling window (its time zone), retries and attempt limit; the SIP call limit is shared with inbound calls.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/JobRequest" } } } },
        "responses": {
        "201": { "description": "Queued.", "content": { "application/json": { "schema": { "type": "object", "properties": { "id": { "type": "string" }, "number": { "type": "string" } } } } } },
        "400": { "$ref": "#/components/responses/BadRequest" },
        "409": { "description": "On the do-not-call list, or the queue is full (100000 waiting jobs).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/queue/bulk": {
      "post": { "summary": "Queue many numbers, all or none: a JSON array of jobs, or CSV with a header line (number, name, note, priority, not_before). At most 10000 jobs and the body limit; every bad row is named. Numbers on the do-not-call list are skipped and listed.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "array", "maxItems": 10000, "items": { "$ref": "#/components/schemas/JobRequest" } } }, "text/csv": { "schema": { "type": "string" } } } },
        "responses": {
        "201": { "description": "Queued.", "content": { "application/json": { "schema": { "type": "object", "properties": { "added": { "type": "integer" }, "ids": { "type": "array", "items": { "type": "string" } }, "skipped": { "type": "array", "items": { "type": "object" } } } } } } },
        "400": { "$ref": "#/components/responses/BadRequest" },
        "409": { "description": "The queue would pass 100000 waiting jobs.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "413": { "description": "Over 10000 jobs or the body limit.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "415": { "description": "Neither application/json nor text/csv.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/queue/stats": {
      "get": { "summary": "Jobs by state, attempts, answered, do-not-call entries, the running flag and the next due time.", "responses": {
        "200": { "description": "Stats.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/QueueStats" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/queue/start": {
      "post": { "summary": "Start placing calls (the state is kept across restarts).", "responses": { "200": { "description": "Running.", "content": { "application/json": { "schema": { "type": "object" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/queue/stop": {
      "post": { "summary": "Stop placing calls; calls under way finish.", "responses": { "200": { "description": "Stopped.", "content": { "application/json": { "schema": { "type": "object" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/queue/{id}": {
      "get": { "summary": "One job with every attempt (start, end, result, SIP code, call id).", "parameters": [ { "$ref": "#/components/parameters/job" } ], "responses": {
        "200": { "description": "The job.", "content": { "application/json": { "schema": { "type": "object", "properties": { "job": { "$ref": "#/components/schemas/Job" }, "attempts": { "type": "array", "items": { "$ref": "#/components/schemas/Attempt" } } } } } } },
        "404": { "$ref": "#/components/responses/NotFound" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/queue/{id}/cancel": {
      "post": { "summary": "Cancel a queued job.", "parameters": [ { "$ref": "#/components/parameters/job" } ], "responses": {
        "200": { "description": "Cancelled.", "content": { "application/json": { "schema": { "type": "object" } } } },
        "404": { "$ref": "#/components/responses/NotFound" },
        "409": { "description": "Not waiting (dialling or finished).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/dnc": {
      "get": { "summary": "The do-not-call list, newest first.", "parameters": [ { "$ref": "#/components/parameters/limit" }, { "$ref": "#/components/parameters/offset" } ], "responses": {
        "200": { "description": "Numbers.", "content": { "application/json": { "schema": { "type": "object" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } },
      "post": { "summary": "Put a number on the do-not-call list; its queued jobs are blocked at once.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "required": ["number"], "properties": { "number": { "type": "string" }, "reason": { "type": "string", "maxLength": 200 } } } } } },
        "responses": { "201": { "description": "Listed.", "content": { "application/json": { "schema": { "type": "object" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/dnc/{number}": {
      "delete": { "summary": "Take a number off the do-not-call list (blocked jobs stay blocked).", "parameters": [ { "name": "number", "in": "path", "required": true, "schema": { "type": "string" } } ], "responses": {
        "200": { "description": "Removed.", "content": { "application/json": { "schema": { "type": "object" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "404": { "$ref": "#/components/responses/NotFound" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "429": { "$ref": "#/components/responses/TooManyRequests" } } }
    },
    "/api/robots/{name}/activate": {
      "post": { "summary": "Make robot `name` (a folder under the robots directory, else a built-in) the one new calls use; calls under way keep theirs. Remembered across restarts. A robot in another language than the running engines takes effect at the next start (the answer says so).", "parameters": [ { "name": "name", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[a-z0-9_-]{1,64}$" } } ],
        "responses": {
        "200": { "description": "Activated.", "content": { "application/json": { "schema": { "type": "object", "properties": { "active": { "type": "string" }, "takes_effect": { "enum": ["now", "at the next start"] }, "why": { "type": "string" } } } } } },
        "400": { "$ref": "#/components/responses/BadRequest" }, "404": { "$ref": "#/components/responses/NotFound" },
        "422": { "description": "The robot does not validate; every problem listed.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "503": { "description": "No daemon behind this API.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
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
            let ok = &op["responses"];
            assert!(
                ok["200"].is_object() || ok["201"].is_object() || ok["202"].is_object(),
                "{} {} has no 200, 201 or 202",
                r.method,
                r.path
            );
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
