use super::*;

fn set(key: &str, value: &str) -> Change<'static> {
    let (key, value) = (key.to_string().into(), Some(value.as_bytes().to_vec().into()));
    Change::Entry { namespace: "ns".into(), bucket: "b".into(), key, value }
}

fn deleted(key: &str) -> Change<'static> {
    Change::Entry { namespace: "ns".into(), bucket: "b".into(), key: key.to_string().into(), value: None }
}

/// Appends one record holding `changes`.
fn append(journal: &mut Journal, changes: &[Change]) {
    journal.begin();
    for change in changes {
        match change {
            Change::Entry { namespace, bucket, key, value } => journal.entry(namespace, bucket, key, value.as_deref()),
            Change::Usage { namespace, keys, bytes } => journal.usage(namespace, *keys, *bytes),
        }
    }
    journal.append().unwrap();
}

fn fresh() -> (tempfile::TempDir, std::path::PathBuf, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.journal");
    let (mut journal, changes) = Journal::open(&path).unwrap();
    assert!(changes.is_empty());
    journal.clear().unwrap();
    (dir, path, journal)
}

fn reread(path: &Path) -> Vec<Change<'static>> {
    Journal::open(path).unwrap().1
}

#[test]
fn records_come_back_in_order_with_values_deletions_and_usage() {
    let (_dir, path, mut journal) = fresh();
    let usage = Change::Usage { namespace: "ns".into(), keys: 2, bytes: 40 };
    append(&mut journal, &[set("a", "1"), set("b", "2"), usage.clone()]);
    append(&mut journal, &[deleted("a"), set("b", "3")]);
    assert_eq!(reread(&path), vec![set("a", "1"), set("b", "2"), usage, deleted("a"), set("b", "3")]);
}

#[test]
fn a_record_cut_by_a_crash_ends_the_journal() {
    let (_dir, path, mut journal) = fresh();
    append(&mut journal, &[set("a", "1")]);
    let second_at = journal.files[0].at;
    append(&mut journal, &[set("b", "2")]);
    append(&mut journal, &[set("c", "3")]);
    // A byte of the second record's payload never reached the disk.
    let file = OpenOptions::new().write(true).open(path.with_extension("journal-a")).unwrap();
    file.write_all_at(&[0xff], second_at + HEADER as u64 + 3).unwrap();
    assert_eq!(reread(&path), vec![set("a", "1")]);
}

#[test]
fn the_older_file_replays_first_and_records_left_behind_newer_ones_never() {
    let (_dir, path, mut journal) = fresh();
    for n in 0..3 {
        append(&mut journal, &[set(&format!("a{n}"), "x")]);
    }
    journal.switch();
    append(&mut journal, &[set("b0", "y")]);
    append(&mut journal, &[set("b1", "y")]);
    let in_order =
        |keys: &[&str]| keys.iter().map(|k| set(k, if k.starts_with('a') { "x" } else { "y" })).collect::<Vec<_>>();
    assert_eq!(reread(&path), in_order(&["a0", "a1", "a2", "b0", "b1"]));

    // Back to the first file: its new record comes after the other file's, and its old
    // records after the new one are older, so they end it.
    journal.switch();
    append(&mut journal, &[set("c0", "z")]);
    let mut want = in_order(&["b0", "b1"]);
    want.push(set("c0", "z"));
    assert_eq!(reread(&path), want);
}

#[test]
fn cleared_it_holds_nothing_and_is_due_after_enough_records() {
    let (_dir, path, mut journal) = fresh();
    append(&mut journal, &[set("a", "1")]);
    journal.clear().unwrap();
    assert!(reread(&path).is_empty());
    for suffix in ["journal-a", "journal-b"] {
        let length = std::fs::metadata(path.with_extension(suffix)).unwrap().len();
        assert_eq!(length, CHECKPOINT_BYTES, "its blocks are allocated up front");
    }
    for _ in 0..CHECKPOINT_RECORDS {
        assert!(!journal.due());
        append(&mut journal, &[set("a", "1")]);
    }
    assert!(journal.due());
    journal.switch();
    assert!(!journal.due());
}
