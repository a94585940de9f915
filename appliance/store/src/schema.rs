//! Versioned migrations. `PRAGMA user_version` holds the schema version; each
//! step runs in its own transaction, so a power cut mid-upgrade leaves the
//! previous version intact.

/// Migrations in order; index + 1 is the version a step produces.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE calls (
        id          TEXT PRIMARY KEY,
        caller      TEXT,
        started_at  INTEGER NOT NULL,   -- unix ms
        ended_at    INTEGER NOT NULL,   -- unix ms
        end_reason  TEXT NOT NULL,
        robot       TEXT NOT NULL,
        mode        TEXT NOT NULL,
        language    TEXT NOT NULL,
        stored_at   INTEGER NOT NULL,   -- unix ms
        record      TEXT NOT NULL       -- the whole call record, JSON
    );
    CREATE INDEX calls_by_end ON calls(ended_at);
    CREATE TABLE turns (
        call_id     TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        idx         INTEGER NOT NULL,
        speaker     TEXT NOT NULL CHECK (speaker IN ('robot', 'caller')),
        caller_text TEXT NOT NULL,
        robot_text  TEXT NOT NULL,
        timings     TEXT NOT NULL,      -- JSON
        PRIMARY KEY (call_id, idx)
    );
    CREATE TABLE leads (
        call_id        TEXT PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
        name           TEXT,
        phone          TEXT,
        request        TEXT,
        dates          TEXT,
        city           TEXT,
        interest       TEXT NOT NULL,
        summary        TEXT,
        consent        INTEGER NOT NULL,
        callback_later INTEGER NOT NULL,
        stored_at      INTEGER NOT NULL
    );
    CREATE INDEX leads_by_time ON leads(stored_at);
    CREATE TABLE outbox (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        msg_id       TEXT NOT NULL UNIQUE,
        call_id      TEXT,              -- no foreign key: retention deletes delivered rows itself
        topic        TEXT NOT NULL,     -- suffix under voiceblock/<device>/
        payload      TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        delivered_at INTEGER,
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT
    );
    CREATE INDEX outbox_pending ON outbox(seq) WHERE delivered_at IS NULL;
    CREATE INDEX outbox_by_call ON outbox(call_id);
    CREATE TABLE config_history (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        version     INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected')),
        body        TEXT NOT NULL,
        errors      TEXT                -- JSON array of strings
    );
    "#,
    // 2: forwarders (webhook, later e-mail/CRM) keep their own delivery
    // state, apart from the MQTT delivered flag: a cursor per forwarder (the
    // highest outbox seq it has finished, delivered or given up) and the
    // messages it gave up on, with the reason. Retention keeps every call
    // whose messages a registered forwarder has not passed.
    r#"
    CREATE TABLE forwarder_cursors (
        forwarder   TEXT PRIMARY KEY,
        last_seq    INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL    -- unix ms
    );
    CREATE TABLE forwarder_failures (
        forwarder   TEXT NOT NULL,
        msg_id      TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        failed_at   INTEGER NOT NULL,   -- unix ms
        attempts    INTEGER NOT NULL,
        error       TEXT NOT NULL,
        PRIMARY KEY (forwarder, msg_id)
    );
    "#,
    // 3: the outbound call queue. A job is one number to call; each dial is
    // an attempt row. `dialing` jobs found at start were cut off by a power
    // cut or restart (their open attempt is closed as `interrupted`).
    r#"
    CREATE TABLE outbound_jobs (
        id          TEXT PRIMARY KEY,
        seq         INTEGER NOT NULL UNIQUE,  -- insertion order, ties after priority
        number      TEXT NOT NULL,            -- E.164 or SIP URI, validated
        dnc_key     TEXT NOT NULL,
        name        TEXT,
        note        TEXT,
        priority    INTEGER NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'dialing', 'done', 'failed', 'cancelled', 'blocked')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_at     INTEGER NOT NULL,         -- unix ms, earliest next attempt
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        last_result TEXT,
        call_id     TEXT,                     -- the answered call
        reason      TEXT                      -- why it failed / was blocked
    );
    CREATE INDEX outbound_due ON outbound_jobs(priority DESC, next_at, seq) WHERE state = 'queued';
    CREATE INDEX outbound_by_state ON outbound_jobs(state, seq);
    CREATE INDEX outbound_jobs_by_call ON outbound_jobs(call_id);
    CREATE TABLE outbound_attempts (
        job_id      TEXT NOT NULL REFERENCES outbound_jobs(id) ON DELETE CASCADE,
        n           INTEGER NOT NULL,
        started_at  INTEGER NOT NULL,
        ended_at    INTEGER,
        result      TEXT,
        sip_code    INTEGER,
        call_id     TEXT,
        detail      TEXT,
        PRIMARY KEY (job_id, n)
    );
    CREATE INDEX outbound_attempts_by_call ON outbound_attempts(call_id);
    CREATE TABLE dnc (
        key         TEXT PRIMARY KEY,         -- vb_outbound::Target::dnc_key
        added_at    INTEGER NOT NULL,
        reason      TEXT
    );
    CREATE TABLE settings (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL
    );
    "#,
];

/// The newest schema version this build knows.
pub const LATEST: i64 = MIGRATIONS.len() as i64;
