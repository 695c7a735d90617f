//! The services' writes survive crashes: simultaneous sign-ups with one email, `kill -9`
//! during a stream of writes, requests cut after their write and before their answer (a test
//! build of the user service with crash points) followed by a `kill -9` and a restart, and a
//! full disk freed again; ids stay unique across crashes and contiguous across clean stops.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::shop::{create_user, status};
use support::{Host, Reply};

#[test]
fn simultaneous_sign_ups_with_one_email_give_exactly_one_201() {
    let host = Host::start(&["user-service"]);
    for round in 0..8 {
        let email = format!("race{round}@example.com");
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let (host, email) = (&host, &email);
                    s.spawn(move || {
                        host.send(
                            "POST",
                            "/api/v1/users",
                            Some(&json!({ "name": format!("Racer {i}"), "email": email })),
                        )
                        .status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let created = statuses.iter().filter(|s| **s == 201).count();
        let conflicts = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!((created, conflicts), (1, 3), "round {round}: {statuses:?}");
    }
    assert_eq!(host.get("/api/v1/users").json()["total"], 8);
}

#[test]
fn every_acknowledged_write_survives_a_kill_9_and_restart() {
    let host = Host::start(&["user-service"]);
    let url = format!("{}/api/v1/users", host.public);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let acknowledged: Vec<(u64, String)> = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut acked = Vec::new();
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let email = format!("durable{i}@example.com");
                let body = json!({ "name": format!("Durable {i}"), "email": email });
                match try_post(&url, &body) {
                    Some(reply) if reply.status == 201 => acked.push((reply.json()["id"].as_u64().unwrap(), email)),
                    Some(_) => {}
                    None => break, // the host is gone
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(1500));
        let mut host = host;
        host.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acked = writer.join().unwrap();
        let host = host.restart();
        let recovered = "storage recovered the writes its journal held";
        let log = host.log_when(|log| log.contains(recovered));
        assert!(log.contains(recovered), "the restart replays the journal: {log}");
        for (id, email) in &acked {
            let reply = host.get(&format!("/api/v1/users/{id}"));
            assert_eq!(reply.status, 200, "acknowledged user {id} was lost");
            assert_eq!(reply.json()["email"], email.as_str());
        }
        let newest = acked.iter().map(|(id, _)| *id).max().unwrap_or(0);
        let next = create_user(&host, "After", "after-the-crash@example.com")["id"].as_u64().unwrap();
        assert!(next > newest, "id {next} after the crash is new (the newest acknowledged was {newest})");
        acked
    });
    assert!(acknowledged.len() > 5, "the writer got only {} writes in", acknowledged.len());
}

#[test]
fn ids_continue_without_a_gap_after_a_clean_stop_and_are_never_reused_after_a_kill_9() {
    let mut host = Host::start(&["user-service"]);
    assert_eq!(create_user(&host, "One", "one@example.com")["id"], 1);
    host.signal("TERM");
    assert_eq!(host.wait_exit(Duration::from_secs(10)), Some(0), "{}", host.log());
    let dir = std::mem::replace(&mut host.dir, tempfile::tempdir().unwrap());
    let host = Host::start_in(dir);
    assert_eq!(create_user(&host, "Two", "two@example.com")["id"], 2, "a clean stop gave back the unused ids");

    let host = host.restart(); // kill -9: the rest of the reserved ids is skipped
    let three = create_user(&host, "Three", "three@example.com");
    let id = three["id"].as_u64().unwrap();
    assert!(id > 2, "no id is given twice: {three}");
    assert_eq!(host.get("/api/v1/users/1").json()["name"], "One");
    assert_eq!(host.get("/api/v1/users/2").json()["name"], "Two");
    assert_eq!(host.get(&format!("/api/v1/users/{id}")).json()["name"], "Three");
    assert_eq!(host.get("/api/v1/users").json()["total"], 3);
}

/// A POST that returns `None` when the connection fails (the host was killed).
fn try_post(url: &str, body: &Value) -> Option<Reply> {
    std::panic::catch_unwind(|| support::request("POST", url, Some(body))).ok()
}

/// Starts a host whose user service is the test build with crash points, on `dir`.
fn start_with_crash_points(dir: tempfile::TempDir) -> Host {
    std::fs::create_dir_all(dir.path().join("components")).unwrap();
    let crashy = support::component("testing/user-service-crash");
    std::fs::copy(crashy, dir.path().join("components/user-service.wasm")).unwrap();
    std::fs::write(dir.path().join("trellis.toml"), "").unwrap();
    Host::start_in(dir)
}

/// Kills the host (as a crash would), puts the regular user service back, and restarts.
fn crash_and_restart(mut host: Host) -> Host {
    host.kill();
    let dir = std::mem::replace(&mut host.dir, tempfile::tempdir().unwrap());
    std::fs::copy(support::component("user-service"), dir.path().join("components/user-service.wasm")).unwrap();
    Host::start_in(dir)
}

#[test]
fn a_user_deleted_by_a_request_cut_before_its_answer_stays_deleted_and_frees_the_email() {
    let host = start_with_crash_points(tempfile::tempdir().unwrap());
    create_user(&host, "Ada", "ada@example.com");
    let cut = host.send("DELETE", "/api/v1/users/1?crash=after-record", None);
    assert_eq!(cut.status, 500, "the crash point stopped it before its answer: {}", cut.body);
    let host = crash_and_restart(host);

    assert_eq!(host.get("/api/v1/users/1").status, 404, "the deleted user stays deleted");
    let again = create_user(&host, "Ada again", "ada@example.com");
    // After a crash, ids may skip the rest of a reserved block; they are never reused.
    assert!(again["id"].as_u64().is_some_and(|id| id > 1), "the email is free for a new user: {again}");
    assert_eq!(host.get("/api/v1/users/1").status, 404, "and signing up did not bring user 1 back");
    assert_eq!(host.get("/api/v1/users").json()["total"], 1);
}

#[test]
fn an_email_change_cut_before_its_answer_frees_the_old_email_and_holds_the_new_one() {
    let host = start_with_crash_points(tempfile::tempdir().unwrap());
    create_user(&host, "Ada", "ada@example.com");
    let change = json!({ "email": "ada@lovelace.org" });
    let cut = host.send("PUT", "/api/v1/users/1?crash=after-record", Some(&change));
    assert_eq!(cut.status, 500, "{}", cut.body);
    let host = crash_and_restart(host);

    assert_eq!(host.get("/api/v1/users/1").json()["email"], "ada@lovelace.org", "the change was stored");
    let other = create_user(&host, "Another Ada", "ada@example.com");
    assert!(other["id"].as_u64().is_some_and(|id| id > 1), "the old email is free again: {other}");
    let taken = host.send("POST", "/api/v1/users", Some(&json!({ "name": "X", "email": "ada@lovelace.org" })));
    assert_eq!(status(&taken), (409, "conflict".into()), "the new email is user 1's");
}

/// A tmpfs mounted for one test, unmounted when dropped (after the host using it is gone).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// None (with a message) where mounting is not allowed: not root, or no tmpfs.
    fn mount(at: &std::path::Path, mib: u32) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (the full-disk test needs root)");
            return None;
        }
        Some(SmallDisk(at.to_path_buf()))
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xAB_u8; 64 * 1024];
        while file.write_all(&chunk).and_then(|_| file.flush()).is_ok() {}
        let _ = file.write_all(&[0; 512]);
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_writes_it_catches_and_storage_works_again_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("data"), 48) else { return };
    std::fs::create_dir_all(dir.path().join("components")).unwrap();
    std::fs::copy(support::component("user-service"), dir.path().join("components/user-service.wasm")).unwrap();
    std::fs::write(dir.path().join("trellis.toml"), "").unwrap();
    let host = Host::start_in(dir);
    let first = create_user(&host, "Before", "before@example.com");

    let filler = disk.fill();
    let name = "n".repeat(200);
    let failed = (0..20_000).find_map(|i| {
        let body = json!({ "name": name, "email": format!("full{i}@example.com") });
        let reply = host.send("POST", "/api/v1/users", Some(&body));
        (reply.status != 201).then_some(reply)
    });
    let failed = failed.expect("some write fails on a full disk");
    assert_eq!(status(&failed).0, 500, "{}", failed.body);
    assert!(failed.body.contains("storage"), "the error names storage: {}", failed.body);
    assert_eq!(host.get(&format!("/api/v1/users/{}", first["id"])).status, 200, "reads still work");

    std::fs::remove_file(filler).unwrap();
    let after = create_user(&host, "After", "after@example.com");
    assert_eq!(host.get(&format!("/api/v1/users/{}", after["id"])).json()["name"], "After");
    assert_eq!(host.get(&format!("/api/v1/users/{}", first["id"])).json()["name"], "Before", "nothing was lost");
    assert!(host.log().contains("storage reopened"), "{}", host.log());
    drop(host);
}

#[test]
fn the_data_folder_the_database_and_the_compile_cache_are_the_hosts_users_alone() {
    use std::os::unix::fs::PermissionsExt;
    let host = Host::start(&["user-service"]);
    let data = host.dir.path().join("data");
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("cache")), 0o700);
    assert_eq!(mode(&data.join("store.redb")), 0o600);
    assert_eq!(mode(&data.join("store.journal-a")), 0o600);
    assert_eq!(mode(&data.join("store.journal-b")), 0o600);
}
