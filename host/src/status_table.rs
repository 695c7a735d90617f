//! `trellis status`: asks a running host's admin API for `/_trellis/services` and prints its
//! components, links and breakers as tables.

use std::fmt::Write;

use anyhow::Context;
use serde_json::Value;

use crate::cli::StatusArgs;

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
    let url = format!("{base}/_trellis/services");
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
    let report: Value = serde_json::from_str(&body).context("the admin API answered something that is not JSON")?;
    if args.json {
        return Ok(serde_json::to_string_pretty(&report)? + "\n");
    }
    Ok(render(&report))
}

/// The report as three tables: components, links, and files that failed to load.
pub fn render(report: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let mut components = vec![vec!["COMPONENT".into(), "STATE".into(), "ROUTES".into(), "EXPORTS".into()]];
    let mut links = vec![vec![
        "CALLER".into(),
        "IMPORT".into(),
        "PROVIDER".into(),
        "BREAKER".into(),
        "CALLS".into(),
        "FAILURES".into(),
    ]];
    for c in list(&report["components"]) {
        let exports: Vec<String> = list(&c["exports"])
            .iter()
            .map(|e| text(&e["interface"]))
            .filter(|name| !name.starts_with("wasi:") && !name.starts_with("trellis:"))
            .collect();
        let routes = list(&c["routes"]).len().to_string();
        let exports = if exports.is_empty() { "-".to_string() } else { exports.join(", ") };
        components.push(vec![text(&c["name"]), text(&c["state"]), routes, exports]);
        for l in list(&c["imports"]) {
            let (provider, breaker, calls, failures) = if l["resolved"] == Value::Bool(true) {
                (
                    text(&l["provider"]),
                    text(&l["breaker"]["state"]),
                    text(&l["breaker"]["calls"]),
                    text(&l["breaker"]["failures"]),
                )
            } else {
                (format!("unresolved: {}", text(&l["reason"])), "-".into(), "-".into(), "-".into())
            };
            links.push(vec![text(&c["name"]), text(&l["interface"]), provider, breaker, calls, failures]);
        }
    }
    let mut out = table(&components);
    if links.len() > 1 {
        out.push('\n');
        out.push_str(&table(&links));
    }
    let failed = list(&report["failed"]);
    if !failed.is_empty() {
        let mut rows = vec![vec!["FAILED".into(), "ERROR".into()]];
        rows.extend(failed.iter().map(|f| vec![text(&f["name"]), text(&f["error"])]));
        out.push('\n');
        out.push_str(&table(&rows));
    }
    out
}

/// The array `v` holds, or none.
fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
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
