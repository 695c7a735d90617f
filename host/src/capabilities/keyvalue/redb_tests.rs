//! The backend on its own: isolation, durability, paging, atomics, group commit, quotas,
//! sequences.
use super::*;
use crate::capabilities::keyvalue::Quota;
use crate::capabilities::keyvalue::changes::{Linked, Op, USAGE};

const CACHE: usize = 4 * 1024 * 1024;

fn storage() -> (Storage, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Storage::open(&dir.path().join("kv.redb"), CACHE).unwrap(), dir)
}

const USERS: Scope = Scope { namespace: "user-service", bucket: "default", quota: Quota::NONE };
const ORDERS: Scope = Scope { namespace: "order-service", bucket: "default", quota: Quota::NONE };

#[test]
fn namespaces_never_see_each_others_keys() {
    let (s, _dir) = storage();
    s.set_many(USERS, vec![("k".into(), b"users".to_vec())]).unwrap();
    assert_eq!(s.get(ORDERS, "k").unwrap(), None);
    assert_eq!(s.list_keys(ORDERS, None).unwrap().0, Vec::<String>::new());
    assert_eq!(s.get(USERS, "k").unwrap(), Some(b"users".to_vec()));
}

#[test]
fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    Storage::open(&path, CACHE).unwrap().set_many(USERS, vec![("k".into(), b"v".to_vec())]).unwrap();
    assert_eq!(Storage::open(&path, CACHE).unwrap().get(USERS, "k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn list_keys_pages_with_a_cursor() {
    let (s, _dir) = storage();
    let entries: Vec<_> = (0..LIST_PAGE + 5).map(|i| (format!("key{i:05}"), vec![])).collect();
    s.set_many(USERS, entries).unwrap();
    s.set_many(ORDERS, vec![("zzz".into(), vec![])]).unwrap();
    let (first, cursor) = s.list_keys(USERS, None).unwrap();
    assert_eq!(first.len(), LIST_PAGE);
    let (rest, end) = s.list_keys(USERS, cursor.as_deref()).unwrap();
    assert_eq!(rest.len(), 5);
    assert_eq!(end, None);
    assert_eq!(rest.last().unwrap(), &format!("key{:05}", LIST_PAGE + 4));
}

#[test]
fn increment_counts_from_zero_and_refuses_non_integers() {
    let (s, _dir) = storage();
    assert_eq!(s.increment(USERS, "n".into(), 1).unwrap(), 1);
    assert_eq!(s.increment(USERS, "n".into(), 41).unwrap(), 42);
    s.set_many(USERS, vec![("text".into(), b"hello".to_vec())]).unwrap();
    assert!(s.increment(USERS, "text".into(), 1).unwrap_err().to_string().contains("8-byte integer"));
}

#[test]
fn compare_and_swap_lets_exactly_one_racer_win() {
    let (s, _dir) = storage();
    let winners: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                scope.spawn(move || {
                    s.compare_and_swap(USERS, "email".into(), None, format!("{i}").into_bytes()).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).filter(|s| *s == Swap::Done).count()
    });
    assert_eq!(winners, 1);
    let current = s.get(USERS, "email").unwrap();
    assert_eq!(s.compare_and_swap(USERS, "email".into(), None, b"x".to_vec()).unwrap(), Swap::Changed(current));
}

#[test]
fn batch_operations_cover_every_key() {
    let (s, _dir) = storage();
    s.set_many(USERS, vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]).unwrap();
    let got = s.get_many(USERS, &["a".into(), "missing".into(), "b".into()]).unwrap();
    assert_eq!(got, vec![Some(b"1".to_vec()), None, Some(b"2".to_vec())]);
    s.delete_many(USERS, vec!["a".into(), "b".into()]).unwrap();
    assert_eq!(s.get_many(USERS, &["a".into(), "b".into()]).unwrap(), vec![None, None]);
}
#[test]
fn concurrent_increments_each_get_their_own_value() {
    let (s, _dir) = storage();
    let mut seen: Vec<i64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|_| {
                let s = s.clone();
                scope.spawn(move || (0..50).map(|_| s.increment(USERS, "n".into(), 1).unwrap()).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    seen.sort_unstable();
    assert_eq!(seen, (1..=1600).collect::<Vec<i64>>(), "no increment lost or handed out twice");
    assert_eq!(s.get(USERS, "n").unwrap(), Some(1600i64.to_le_bytes().to_vec()));
}

#[test]
fn a_refused_write_in_a_group_fails_alone() {
    let (s, _dir) = storage();
    s.set_many(USERS, vec![("text".into(), b"hello".to_vec())]).unwrap();
    let write = |ops| Write::new(USERS, ops);
    let results = s
        .inner
        .commit(vec![
            write(vec![Op::Set("a".into(), b"1".to_vec())]),
            write(vec![Op::Set("c".into(), b"3".to_vec()), Op::Increment("text".into(), 1)]),
            write(vec![Op::Set("b".into(), b"2".to_vec())]),
        ])
        .unwrap();
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(results[1].as_ref().unwrap_err().to_string().contains("8-byte integer"));
    assert_eq!(s.get_many(USERS, &["a".into(), "b".into()]).unwrap(), vec![Some(b"1".to_vec()), Some(b"2".to_vec())]);
    assert_eq!(s.get(USERS, "text").unwrap(), Some(b"hello".to_vec()));
    assert_eq!(s.get(USERS, "c").unwrap(), None, "the refused write's own set did not happen");
}

#[test]
fn the_writes_of_one_group_see_each_others_changes_and_a_refused_one_leaves_none() {
    let (s, _dir) = storage();
    s.set_many(USERS, vec![("gone".into(), b"x".to_vec())]).unwrap();
    let write = |ops| Write::new(USERS, ops);
    let results = s
        .inner
        .commit(vec![
            write(vec![Op::Increment("n".into(), 1), Op::Delete("gone".into())]),
            write(vec![
                Op::Increment("n".into(), 10),
                Op::Set("t".into(), b"x".to_vec()),
                Op::Increment("t".into(), 1),
            ]),
            write(vec![
                Op::Increment("n".into(), 100),
                Op::Expect("gone".into(), None),
                Op::Set("seen".into(), b"y".to_vec()),
            ]),
            write(vec![
                Op::Expect("n".into(), Some(101i64.to_le_bytes().to_vec())),
                Op::Set("gone".into(), b"back".to_vec()),
            ]),
        ])
        .unwrap();
    assert_eq!(results[0].as_ref().ok(), Some(&Written::Done(vec![1])));
    assert!(results[1].as_ref().unwrap_err().to_string().contains("8-byte integer"), "{:?}", results[1]);
    assert_eq!(results[2].as_ref().ok(), Some(&Written::Done(vec![101])), "the refused write added nothing to n");
    assert_eq!(results[3].as_ref().ok(), Some(&Written::Done(vec![])), "n is 101 after the writes before it");
    let keys = ["n", "gone", "seen", "t"].map(String::from);
    let stored = s.get_many(USERS, &keys).unwrap();
    let n = Some(101i64.to_le_bytes().to_vec());
    assert_eq!(stored, vec![n, Some(b"back".to_vec()), Some(b"y".to_vec()), None]);

    // What a key used before a write is what the writes before it in the group left.
    let tight = Scope { namespace: "tight", quota: Quota { max_keys: 2, ..Quota::NONE }, ..USERS };
    let write = |ops| Write::new(tight, ops);
    let results = s
        .inner
        .commit(vec![
            write(vec![Op::Set("a".into(), b"1".to_vec())]),
            write(vec![Op::Set("a".into(), b"2".to_vec()), Op::Set("b".into(), b"2".to_vec())]),
            write(vec![Op::Set("c".into(), b"3".to_vec())]),
        ])
        .unwrap();
    assert!(results[0].is_ok() && results[1].is_ok(), "a set again is not a new key: {results:?}");
    assert!(results[2].as_ref().unwrap_err().to_string().contains("max_keys"), "{:?}", results[2]);
}

#[test]
fn a_quota_refuses_the_write_that_would_pass_it_and_nothing_else() {
    let (s, _dir) = storage();
    let quota = Quota { max_key_bytes: 8, max_value_bytes: 10, max_keys: 3, max_bytes: 30 };
    let small = Scope { quota, ..USERS };
    let err = s.set_many(small, vec![("k".into(), vec![0; 11])]).unwrap_err().to_string();
    assert!(err.contains("quota") && err.contains("max_value_bytes"), "{err}");
    let err = s.set_many(small, vec![("much-too-long".into(), vec![])]).unwrap_err().to_string();
    assert!(err.contains("max_key_bytes"), "{err}");
    s.set_many(small, vec![("a".into(), vec![0; 10]), ("b".into(), vec![0; 10])]).unwrap();
    let err = s.set_many(small, vec![("c".into(), vec![0; 10])]).unwrap_err().to_string();
    assert!(err.contains("max_storage_mib"), "22 bytes stored, 11 more would pass 30: {err}");
    s.set_many(small, vec![("c".into(), vec![0; 5])]).unwrap();
    let err = s.increment(small, "d".into(), 1).unwrap_err().to_string();
    assert!(err.contains("max_keys"), "{err}");
    s.set_many(small, vec![("a".into(), vec![0; 1])]).unwrap();
    s.delete_many(small, vec!["b".into()]).unwrap();
    s.increment(small, "d".into(), 1).expect("room again after a delete");
    s.set_many(ORDERS, vec![("big".into(), vec![0; 1000])]).expect("another namespace has its own quota");
}

#[test]
fn usage_is_counted_again_for_a_database_that_did_not_keep_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    Storage::open(&path, CACHE).unwrap().set_many(USERS, vec![("a".into(), vec![0; 10])]).unwrap();
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(USAGE).unwrap();
        txn.commit().unwrap();
    }
    let s = Storage::open(&path, CACHE).unwrap();
    let tight = Scope { quota: Quota { max_bytes: 20, ..Quota::NONE }, ..USERS };
    assert!(s.set_many(tight, vec![("b".into(), vec![0; 10])]).is_err(), "11 + 11 bytes are over 20");
}

#[test]
fn the_database_file_is_readable_only_by_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    Storage::open(&path, CACHE).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_write_of_several_ops_happens_whole_or_not_at_all() {
    let (s, _dir) = storage();
    let ops = vec![
        Op::Expect("order/1".into(), None),
        Op::Set("order/1".into(), b"{}".to_vec()),
        Op::Set("by-user/7/1".into(), vec![]),
        Op::Increment("count".into(), 1),
        Op::Increment("count".into(), 1),
    ];
    assert_eq!(s.write(USERS, ops.clone()).unwrap(), Written::Done(vec![1, 2]));
    assert_eq!(s.write(USERS, ops).unwrap(), Written::Changed("order/1".into(), Some(b"{}".to_vec())));
    assert_eq!(s.get(USERS, "count").unwrap(), Some(2i64.to_le_bytes().to_vec()), "the refused write changed nothing");
    let refused = s.write(USERS, vec![Op::Delete("by-user/7/1".into()), Op::Increment("order/1".into(), 1)]);
    assert!(refused.unwrap_err().to_string().contains("8-byte integer"));
    assert_eq!(s.get(USERS, "by-user/7/1").unwrap(), Some(vec![]), "the delete before the refusal did not happen");
}

#[test]
fn a_scan_seeks_to_its_prefix_and_position_and_stops_at_the_prefixs_end() {
    let (s, _dir) = storage();
    let entries: Vec<_> = (0..50).map(|i| (format!("i/{i:03}"), vec![i as u8])).collect();
    s.set_many(USERS, entries).unwrap();
    s.set_many(USERS, vec![("h".into(), vec![]), ("j".into(), vec![])]).unwrap();
    let keys = |found: Vec<(String, Vec<u8>)>| found.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(s.scan(USERS, "i/", None, 0, 3).unwrap()), ["i/000", "i/001", "i/002"]);
    assert_eq!(keys(s.scan(USERS, "i/", Some("i/010"), 0, 2).unwrap()), ["i/011", "i/012"]);
    assert_eq!(keys(s.scan(USERS, "i/", Some("i/010"), 5, 2).unwrap()), ["i/016", "i/017"]);
    assert_eq!(keys(s.scan(USERS, "i/", None, 48, 10).unwrap()), ["i/048", "i/049"], "stops at the prefix's end");
    assert_eq!(s.scan(USERS, "i/", Some("i/0105"), 0, 1).unwrap()[0].0, "i/011", "after a key that is not there");
    assert!(s.scan(ORDERS, "i/", None, 0, 10).unwrap().is_empty(), "another namespace");
}

/// `trellis:keyvalue/sequences` on the backend: ids drawn in reserved blocks.
mod sequences {
    use super::*;

    use crate::capabilities::keyvalue::reserved::BLOCK;

    const ORDERS: Scope = Scope { namespace: "order-service", bucket: "orders-counters", quota: Quota::NONE };

    fn next(s: &Storage, key: &str) -> u64 {
        s.next_reserved(ORDERS, key).unwrap_or_else(|| s.next_reserving(ORDERS, key).unwrap())
    }

    fn stored(s: &Storage, key: &str) -> i64 {
        i64::from_le_bytes(s.get(ORDERS, key).unwrap().unwrap().try_into().unwrap())
    }

    #[test]
    fn numbers_are_unique_and_rising_under_concurrency_with_one_commit_per_block() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(&dir.path().join("kv.redb"), 1 << 22).unwrap();
        let drawn: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let threads: Vec<_> =
                (0..8).map(|_| scope.spawn(|| (0..500).map(|_| next(&s, "next-id")).collect::<Vec<_>>())).collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for mine in &drawn {
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "each drawer sees rising numbers");
        }
        let mut all: Vec<u64> = drawn.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all, (1..=4000).collect::<Vec<_>>(), "4,000 draws gave 1 to 4,000, each once");
        assert_eq!(stored(&s, "next-id"), (4000 + BLOCK - 1) / BLOCK * BLOCK, "the key holds what was reserved");
    }

    #[test]
    fn a_crash_skips_the_rest_of_a_block_and_a_clean_stop_gives_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        let s = Storage::open(&path, 1 << 22).unwrap();
        s.increment(ORDERS, "next-id".into(), 5).unwrap();
        assert_eq!(next(&s, "next-id"), 6, "continues a counter that increments drew from");
        drop(s); // a crash: nothing given back

        let s = Storage::open(&path, 1 << 22).unwrap();
        let after_crash = next(&s, "next-id");
        assert_eq!(after_crash, 5 + BLOCK as u64 + 1, "the rest of the lost block is skipped, never reused");
        assert_eq!(next(&s, "next-id"), after_crash + 1);
        s.release_sequences();
        assert_eq!(stored(&s, "next-id"), after_crash as i64 + 1, "the unused rest went back");
        assert_eq!(next(&s, "next-id"), after_crash + 2, "a draw after the release reserves again");
        s.release_sequences();
        drop(s);

        let s = Storage::open(&path, 1 << 22).unwrap();
        assert_eq!(next(&s, "next-id"), after_crash + 3, "a clean restart continues without a gap");
    }

    #[test]
    fn a_counter_that_is_not_a_number_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(&dir.path().join("kv.redb"), 1 << 22).unwrap();
        s.set_many(ORDERS, vec![("next-id".into(), b"seven".to_vec())]).unwrap();
        let e = s.next_reserving(ORDERS, "next-id").unwrap_err().to_string();
        assert!(e.contains("next-id") || e.contains("integer"), "{e}");
    }
}

#[test]
fn a_linked_write_is_stored_with_its_write_or_not_at_all() {
    use futures::executor::block_on;
    let (s, _dir) = storage();
    const LOG: Scope<'static> = Scope { namespace: "trellis:events", bucket: "log", quota: Quota::NONE };
    let append = |value: &[u8]| Op::Append { counter: "seq".into(), prefix: "m/".into(), value: value.to_vec() };
    let linked = |value: &[u8]| Linked { scope: LOG, ops: vec![append(value)] };

    let ops =
        vec![Op::Expect("user".into(), None), Op::Set("user".into(), b"ada".to_vec()), Op::Increment("n".into(), 1)];
    let written = block_on(s.write_linked(USERS, ops, linked(b"created"))).unwrap();
    assert_eq!(written, Written::Done(vec![1, 1]), "the write's increment, then the linked append's number");
    assert_eq!(s.get(LOG, "m/00000000000000000001").unwrap(), Some(b"created".to_vec()));

    // An expect that fails writes neither.
    let ops = vec![Op::Expect("user".into(), None), Op::Set("user".into(), b"eve".to_vec())];
    let refused = block_on(s.write_linked(USERS, ops, linked(b"again"))).unwrap();
    assert_eq!(refused, Written::Changed("user".into(), Some(b"ada".to_vec())));
    assert_eq!(s.get(USERS, "user").unwrap(), Some(b"ada".to_vec()));
    assert_eq!(s.list_keys(LOG, None).unwrap().0, vec!["m/00000000000000000001".to_string(), "seq".into()]);

    // A linked write that fails abandons the whole transaction: the other write is not stored.
    s.set_many(LOG, vec![("seq".into(), b"not a number".to_vec())]).unwrap();
    let failed = block_on(s.write_linked(USERS, vec![Op::Set("other".into(), b"x".to_vec())], linked(b"lost")));
    assert!(failed.unwrap_err().to_string().contains("neither is stored"));
    assert_eq!(s.get(USERS, "other").unwrap(), None);
}

#[test]
fn a_database_from_before_byte_compared_keys_is_moved_over_whole_on_opening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    const BEFORE: redb::TableDefinition<(&str, &str, &str), &[u8]> = redb::TableDefinition::new("entries");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut old = txn.open_table(BEFORE).unwrap();
            // More than one batch of the move, across two namespaces.
            for i in 0..60_000u32 {
                old.insert(("user-service", "default", format!("user/{i:06}").as_str()), b"u".as_slice()).unwrap();
            }
            old.insert(("order-service", "default", "é"), b"o".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let s = Storage::open(&path, CACHE).unwrap();
    assert_eq!(s.get(USERS, "user/000000").unwrap(), Some(b"u".to_vec()));
    assert_eq!(s.get(USERS, "user/059999").unwrap(), Some(b"u".to_vec()));
    assert_eq!(s.get(ORDERS, "é").unwrap(), Some(b"o".to_vec()));
    let page = s.scan(USERS, "user/", Some("user/000998"), 0, 3).unwrap();
    let keys: Vec<&str> = page.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["user/000999", "user/001000", "user/001001"], "in the same order as before");
    // The quota sees what was moved, and the old table is gone: opening again moves nothing.
    let tiny = Scope { quota: Quota { max_keys: 60_000, ..Quota::NONE }, ..USERS };
    assert!(s.write(tiny, vec![Op::Set("one-more".into(), vec![])]).unwrap_err().to_string().contains("max_keys"));
    drop(s);
    let s = Storage::open(&path, CACHE).unwrap();
    assert_eq!(s.list_keys(ORDERS, None).unwrap().0, vec!["é".to_string()]);
}
