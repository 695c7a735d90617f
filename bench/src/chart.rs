//! The results charts, as SVG: grouped bars, one group per case, one bar per series.

use std::path::Path;

use plotters::prelude::*;

/// Requests per second by concurrency: `series` is one (system name, requests per second at
/// each concurrency) per system.
pub fn throughput(path: &Path, concurrency: &[u32], series: &[(&str, Vec<f64>)]) -> anyhow::Result<()> {
    let groups: Vec<String> =
        concurrency.iter().map(|n| format!("{n} connection{}", if *n == 1 { "" } else { "s" })).collect();
    let caption = "HTTP into the hello component: successful requests per second";
    bars(path, caption, "requests / s", &groups, series)
}

/// One group of bars per entry of `groups`; `series` is one (name, value per group) each.
pub fn bars(
    path: &Path,
    caption: &str,
    unit: &str,
    groups: &[String],
    series: &[(&str, Vec<f64>)],
) -> anyhow::Result<()> {
    let width = (groups.len() as u32 * 160).max(900);
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = series.iter().flat_map(|(_, v)| v.iter().copied()).fold(1.0, f64::max) * 1.15;
    let count = groups.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..count, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < groups.len() { groups[i].clone() } else { String::new() }
        })
        .y_label_formatter(&|y| if top < 10.0 { format!("{y:.1}") } else { format!("{y:.0}") })
        .y_desc(unit)
        .draw()?;
    let colors = [RGBColor(46, 125, 50), RGBColor(30, 100, 200), RGBColor(150, 150, 150), RGBColor(129, 199, 132)];
    let width = 0.8 / series.len() as f64;
    for (s, (name, values)) in series.iter().enumerate() {
        let color = colors[s % colors.len()];
        chart
            .draw_series(values.iter().enumerate().map(|(i, rps)| {
                let x0 = i as f64 + 0.1 + s as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.9, *rps)], color.filled())
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
