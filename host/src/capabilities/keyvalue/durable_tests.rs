//! Reads across what redb holds and what the groups since its last durable commit changed.
use crate::capabilities::keyvalue::{Quota, Scope, Storage};

const CACHE: usize = 4 * 1024 * 1024;
const SCOPE: Scope = Scope { namespace: "shop", bucket: "default", quota: Quota::NONE };

fn set(s: &Storage, key: &str, value: &str) {
    s.set_many(SCOPE, vec![(key.into(), value.into())]).unwrap();
}

#[test]
fn reads_see_stored_and_recent_writes_as_one_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    {
        let s = Storage::open(&path, CACHE).unwrap();
        for key in ["a", "c", "e", "g", "i"] {
            set(&s, key, "stored");
        }
        set(&s, "other", "x");
    } // a clean stop stores everything in redb and empties the journal
    let s = Storage::open(&path, CACHE).unwrap();
    set(&s, "b", "recent");
    set(&s, "e", "recent");
    s.delete_many(SCOPE, vec!["c".into(), "g".into()]).unwrap();
    set(&s, "j", "recent");

    let keys = ["a", "b", "c", "e", "z"].map(String::from);
    let got = s.get_many(SCOPE, &keys).unwrap();
    let want = [Some("stored"), Some("recent"), None, Some("recent"), None].map(|v| v.map(|v| v.as_bytes().to_vec()));
    assert_eq!(got, want);
    assert_eq!(s.get(SCOPE, "g").unwrap(), None, "deleted since the last durable commit");

    let (keys, next) = s.list_keys(SCOPE, None).unwrap();
    assert_eq!(keys, ["a", "b", "e", "i", "j", "other"], "merged, deletions left out");
    assert_eq!(next, None);
    let entries = |prefix, after, skip, limit| {
        let found = s.scan(SCOPE, prefix, after, skip, limit).unwrap();
        found.into_iter().map(|(k, v)| format!("{k}={}", String::from_utf8(v).unwrap())).collect::<Vec<_>>()
    };
    assert_eq!(entries("", Some("b"), 1, 2), ["i=stored", "j=recent"], "after b, skipping e");
    assert_eq!(entries("o", None, 0, 10), ["other=x"]);
    assert_eq!(entries("", None, 0, 3), ["a=stored", "b=recent", "e=recent"]);

    drop(s);
    let s = Storage::open(&path, CACHE).unwrap();
    assert_eq!(s.list_keys(SCOPE, None).unwrap().0, ["a", "b", "e", "i", "j", "other"], "the same once stored");
}

#[test]
fn a_quota_counts_what_recent_writes_left() {
    let dir = tempfile::tempdir().unwrap();
    let tight = Scope { quota: Quota { max_keys: 2, ..Quota::NONE }, ..SCOPE };
    let s = Storage::open(&dir.path().join("kv.redb"), CACHE).unwrap();
    s.set_many(tight, vec![("a".into(), b"1".to_vec())]).unwrap();
    s.set_many(tight, vec![("b".into(), b"2".to_vec())]).unwrap();
    let err = s.set_many(tight, vec![("c".into(), b"3".to_vec())]).unwrap_err().to_string();
    assert!(err.contains("max_keys"), "{err}");
    s.delete_many(tight, vec!["a".into()]).unwrap();
    s.set_many(tight, vec![("c".into(), b"3".to_vec())]).expect("room again after a delete");
}

#[test]
fn once_writes_stop_the_database_alone_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(&dir.path().join("kv.redb"), CACHE).unwrap();
    set(&s, "a", "1");
    let unstored = |s: &Storage| {
        let unstored = s.inner.unstored();
        !unstored.fresh.is_empty() || !unstored.frozen.is_empty()
    };
    assert!(unstored(&s), "just written: in the journal and in memory");
    let waited = std::time::Instant::now();
    while unstored(&s) {
        assert!(waited.elapsed() < std::time::Duration::from_secs(10), "still not stored in redb");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(s.get(SCOPE, "a").unwrap(), Some(b"1".to_vec()));
}
