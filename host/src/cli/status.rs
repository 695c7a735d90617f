//! `trellis status`: asks a running host's admin API for `/_trellis/services`,
//! `/_trellis/messaging` and `/_trellis/cluster` and prints its components, links and
//! breakers (a remote provider with the hosts that run it), its subscribers with their lag,
//! and in cluster mode the hosts of the cluster, as tables.

use std::fmt::Write;

use anyhow::Context;

use super::StatusArgs;
use crate::events::Status;
use crate::ops::report::{ClusterReport, ComponentState, ServicesReport};

/// Fetches the report and renders it (or the raw JSON with `--json`).
pub fn status(args: &StatusArgs) -> anyhow::Result<String> {
    let admin = match &args.admin {
        Some(admin) => admin.clone(),
        None => {
            let path = args.data.join("admin.addr");
            std::fs::read_to_string(&path)
                .with_context(|| {
                    format!(
                        "cannot read {}: is `trellis serve` running with --data {}?",
                        path.display(),
                        args.data.display()
                    )
                })?
                .trim()
                .to_string()
        }
    };
    let base = if admin.starts_with("http") { admin } else { format!("http://{admin}") };
    let body = get(&base, "/_trellis/services", args)?;
    let report: ServicesReport =
        serde_json::from_str(&body).context("the admin API answered something that is not its services report")?;
    if args.json {
        return Ok(serde_json::to_string_pretty(&report)? + "\n");
    }
    let messaging: Status = serde_json::from_str(&get(&base, "/_trellis/messaging", args)?)
        .context("the admin API answered something that is not its messaging status")?;
    let cluster: ClusterReport = serde_json::from_str(&get(&base, "/_trellis/cluster", args)?)
        .context("the admin API answered something that is not its cluster report")?;
    Ok(render(&report) + &render_messaging(&messaging) + &render_cluster(&cluster))
}

/// The hosts of the cluster and what each runs, in cluster mode.
fn render_cluster(report: &ClusterReport) -> String {
    let Some(status) = &report.status else { return String::new() };
    let mut rows = vec![vec!["HOST".into(), "HTTP".into(), "SEEN".into(), "COMPONENTS".into()]];
    for h in &status.hosts {
        let name = if h.this_host { format!("{} (this host)", h.record.host) } else { h.record.host.clone() };
        let seen = format!("{:.1}s ago", h.last_seen_ms as f64 / 1000.0);
        let components: Vec<&str> = h.record.components.iter().map(|c| c.name.as_str()).collect();
        rows.push(vec![name, h.record.http.clone(), seen, components.join(",")]);
    }
    let connection = if status.connected { "connected" } else { "NOT CONNECTED" };
    format!("\ncluster {} over {} ({connection})\n{}", status.name, status.nats.join(","), table(&rows))
}

/// The body of the admin API's answer to `GET path`, which must be 200.
fn get(base: &str, path: &str, args: &StatusArgs) -> anyhow::Result<String> {
    let url = format!("{base}{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut request = agent.get(&url);
    if let Some(token) = &args.admin_token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().with_context(|| format!("cannot reach the admin API at {url}"))?;
    let body = response.body_mut().read_to_string()?;
    if response.status() != 200 {
        anyhow::bail!("the admin API answered {}: {body}", response.status());
    }
    Ok(body)
}

/// The subscribers, with their lag and dead letters, if any component subscribes.
fn render_messaging(status: &Status) -> String {
    if status.subscribers.is_empty() && status.dead_letters.is_empty() {
        return String::new();
    }
    let mut rows = vec![vec![
        "SUBSCRIBER".into(),
        "TOPICS".into(),
        "LAG".into(),
        "OLDEST".into(),
        "BREAKER".into(),
        "DEAD LETTERS".into(),
    ]];
    for s in &status.subscribers {
        let dead = status.dead_letters.iter().filter(|d| d.subscriber == s.name).count();
        let oldest = format!("{:.1}s", s.lag_seconds);
        let row = [&s.name, &s.topics.join(","), &s.lag.to_string(), &oldest, &s.breaker, &dead.to_string()];
        rows.push(row.map(String::clone).to_vec());
    }
    format!("\n{}", table(&rows))
}

/// The report as three tables: components, links, and files that failed to load.
fn render(report: &ServicesReport) -> String {
    let mut components = vec![vec!["COMPONENT".into(), "STATE".into(), "ROUTES".into(), "EXPORTS".into()]];
    let mut links = vec![vec![
        "CALLER".into(),
        "IMPORT".into(),
        "PROVIDER".into(),
        "BREAKER".into(),
        "CALLS".into(),
        "FAILURES".into(),
    ]];
    for c in &report.components {
        let exports: Vec<&str> = c
            .exports
            .iter()
            .map(|e| e.interface.as_str())
            .filter(|name| !name.starts_with("wasi:") && !name.starts_with("trellis:"))
            .collect();
        let exports = if exports.is_empty() { "-".to_string() } else { exports.join(", ") };
        let state = match c.state {
            ComponentState::Ready => "ready",
            ComponentState::Degraded => "degraded",
        };
        components.push(vec![c.name.clone(), state.into(), c.routes.len().to_string(), exports]);
        for l in &c.imports {
            let (provider, breaker, calls, failures) = match (&l.provider, &l.breaker) {
                (Some(provider), Some(breaker)) => (
                    match &l.remote_hosts {
                        Some(hosts) => format!("{provider} @ {}", hosts.join(",")),
                        None => provider.clone(),
                    },
                    breaker.state.as_str().to_string(),
                    breaker.calls.to_string(),
                    breaker.failures.to_string(),
                ),
                _ => {
                    let reason = l.reason.as_deref().unwrap_or("-");
                    (format!("unresolved: {reason}"), "-".into(), "-".into(), "-".into())
                }
            };
            links.push(vec![c.name.clone(), l.interface.clone(), provider, breaker, calls, failures]);
        }
    }
    let mut out = table(&components);
    if links.len() > 1 {
        out.push('\n');
        out.push_str(&table(&links));
    }
    if !report.failed.is_empty() {
        let mut rows = vec![vec!["FAILED".into(), "ERROR".into()]];
        rows.extend(report.failed.iter().map(|f| vec![f.name.clone(), f.error.clone()]));
        out.push('\n');
        out.push_str(&table(&rows));
    }
    out
}

/// Left-aligned columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
