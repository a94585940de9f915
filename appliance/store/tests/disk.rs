//! The store against a full disk and a damaged file.
//!
//! `a_full_tmpfs_...` mounts a real 2 MiB tmpfs (needs root, as the project's
//! test machines and CI run); `a_page_budget_...` uses SQLite's
//! `max_page_count`, which fails writes with the same SQLITE_FULL code a full
//! file system gives, and runs anywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use vb_store::{NewCall, NewLead, NewTurn, Speaker, Store, StoreError, Timestamp};

fn call(i: usize, pad: usize) -> NewCall {
    NewCall {
        id: Some(format!("call-{i:05}")),
        caller: Some("+15550000".into()),
        started_at: Timestamp(1_700_000_000_000 + i as i64),
        ended_at: Timestamp(1_700_000_060_000 + i as i64),
        end_reason: "completed".into(),
        robot: "reception-en".into(),
        mode: "script".into(),
        language: "en".into(),
        turns: vec![NewTurn {
            index: 1,
            speaker: Speaker::Caller,
            caller_text: "t".repeat(pad.min(4000)),
            robot_text: "ok".into(),
            timings: json!({}),
        }],
        lead: Some(NewLead {
            name: Some(format!("Caller {i}")),
            phone: Some(format!("+1555{i:07}")),
            interest: "warm".into(),
            ..Default::default()
        }),
        record: json!({ "pad": "r".repeat(pad) }),
    }
}

/// Writes calls until the store reports a full disk; returns how many made it.
fn fill(store: &Store, pad: usize) -> usize {
    for i in 0..100_000 {
        match store.record_call(&call(i, pad)) {
            Ok(_) => {}
            Err(e) => {
                assert!(e.is_disk_full(), "expected a full disk, got: {e}");
                assert!(e.to_string().contains("disk full"), "{e}");
                return i;
            }
        }
    }
    panic!("the store never filled up");
}

fn check_all_there(path: &Path, n: usize) {
    let store = Store::open(path).expect("reopen after a full disk");
    let leads = store.leads_since(None).unwrap();
    assert_eq!(leads.len(), n, "every acknowledged lead survives");
    for (i, l) in leads.iter().enumerate() {
        assert_eq!(l.call_id, format!("call-{i:05}"));
    }
    assert_eq!(store.outbox_depth().unwrap(), 2 * n as u64);
}

struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_tmpfs_refuses_the_write_clearly_and_loses_no_stored_lead() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("run mount(8)");
    assert!(
        status.success(),
        "this test mounts a 2 MiB tmpfs and needs root (CAP_SYS_ADMIN); run the tests as root as scripts/test does"
    );
    let _guard = Tmpfs(mnt.clone());
    let path = mnt.join("box.db");
    let n = {
        let store = Store::open(&path).unwrap();
        let n = fill(&store, 3000);
        assert!(n > 10, "only {n} calls fit");
        // After the failure the store still answers, and still refuses.
        assert_eq!(store.leads_since(None).unwrap().len(), n);
        assert!(store
            .record_call(&call(n, 3000))
            .unwrap_err()
            .is_disk_full());
        // Making room (delivering and retiring old calls) lets writes go on.
        n
    };
    check_all_there(&path, n);
}

#[test]
fn a_page_budget_behaves_like_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("box.db");
    let n = {
        let store = Store::open(&path).unwrap();
        store.set_page_limit(64).unwrap();
        let n = fill(&store, 2000);
        assert!(n > 3, "only {n} calls fit");
        n
    };
    check_all_there(&path, n);
}

fn sha(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn a_file_that_is_not_a_store_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("box.db");
    std::fs::write(&path, b"this is a text file, not a database\n".repeat(100)).unwrap();
    let before = sha(&path);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("not modified"), "{err}");
    assert_eq!(sha(&path), before);
    assert!(!dir.path().join("box.db-wal").exists());
}

#[test]
fn a_damaged_store_is_refused_with_a_clear_error_and_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("box.db");
    {
        let store = Store::open(&path).unwrap();
        for i in 0..50 {
            store.record_call(&call(i, 3000)).unwrap();
        }
    }
    // Closing the last connection folded the WAL into the main file, so the
    // damage below hits real data.
    assert!(!dir.path().join("box.db-wal").exists());
    // Scribble over the middle pages (b-tree pages of the tables).
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 20 * 4096, "{} bytes", bytes.len());
    for b in &mut bytes[4096 * 2..4096 * 12] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let before = sha(&path);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(".recover"), "{err}");
    assert_eq!(sha(&path), before, "the damaged file is kept for recovery");
}
