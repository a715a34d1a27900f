//! The devnet's summary as a static HTML page (written next to its JSON): the story (slashes,
//! bonuses), the providers and oracles with their money, and plots of earnings, stake and
//! violations over the epochs. No scripts, no external resources: it opens from disk.

use std::fmt::Write as _;

use serde_json::Value;

/// Line colours, one per series.
const COLOURS: [&str; 6] = ["#0969da", "#cf222e", "#8250df", "#1a7f37", "#bf8700", "#57606a"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn text(v: &Value) -> String {
    esc(&v.as_str().map_or_else(|| v.to_string(), ToOwned::to_owned))
}

fn num(v: &Value) -> f64 {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0.0)
}

/// A line chart: one polyline per series over the epochs, with axes, ticks and a legend.
fn chart(title: &str, unit: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let (w, h, left, bottom, top, right) = (560.0, 240.0, 60.0, 30.0, 28.0, 130.0);
    let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let y1 = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(0.0_f64, f64::max);
    let (x0, x1) = if x0 > x1 { (0.0, 1.0) } else { (x0, x1.max(x0 + 1.0)) };
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.1 };
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - y / y1 * (h - bottom - top);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><text x="{left}" y="16" font-weight="600">{t}</text>"##,
        t = esc(title)
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#8c959f"/><line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#8c959f"/>"##,
        b = h - bottom,
        r = w - right
    );
    for i in 0..=4 {
        let y = y1 * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<text x="{x}" y="{yy}" font-size="11" text-anchor="end">{y:.2}</text><line x1="{left}" y1="{py}" x2="{r}" y2="{py}" stroke="#eaeef2"/>"##,
            x = left - 6.0,
            yy = py(y) + 4.0,
            py = py(y),
            r = w - right
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{x}" y="{y}" font-size="11" text-anchor="middle">epoch</text><text x="12" y="{ym}" font-size="11" transform="rotate(-90 12 {ym})" text-anchor="middle">{u}</text>"##,
        x = (left + w - right) / 2.0,
        y = h - 4.0,
        ym = (top + h - bottom) / 2.0,
        u = esc(unit)
    );
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // small epoch numbers
    for e in (x0 as u64)..=(x1 as u64) {
        #[allow(clippy::cast_precision_loss)]
        let x = px(e as f64);
        let _ = write!(
            svg,
            r##"<text x="{x}" y="{y}" font-size="11" text-anchor="middle">{e}</text>"##,
            y = h - bottom + 14.0
        );
    }
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = pts.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ = write!(svg, r##"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"##, points.join(" "));
        for (x, y) in pts {
            let _ = write!(svg, r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{c}"/>"##, px(*x), py(*y));
        }
        #[allow(clippy::cast_precision_loss)]
        let ly = top + 16.0 * i as f64;
        let _ = write!(
            svg,
            r##"<rect x="{lx}" y="{ry}" width="10" height="10" fill="{c}"/><text x="{tx}" y="{ty}" font-size="12">{n}</text>"##,
            lx = w - right + 12.0,
            ry = ly,
            tx = w - right + 28.0,
            ty = ly + 9.0,
            n = esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One series per provider from the summary's timeline field `key`.
fn per_provider(s: &Value, key: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    let names: Vec<String> = s["providers"]
        .as_array()
        .map(|a| a.iter().map(|p| p["name"].as_str().unwrap_or("?").to_owned()).collect())
        .unwrap_or_default();
    let timeline = s["timeline"].as_array().cloned().unwrap_or_default();
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let pts = timeline.iter().map(|t| (num(&t["epoch"]), num(&t[key][i]))).collect();
            (n.clone(), pts)
        })
        .collect()
}

/// The report page for a devnet summary (as its JSON).
#[must_use]
pub fn html(s: &Value) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>wirepact devnet report</title><style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 28px; color: #1b1f24; max-width: 1180px; }}
h1 {{ font-size: 22px; margin-bottom: 2px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
.sub {{ color: #57606a; }} table {{ border-collapse: collapse; }} th, td {{ padding: 4px 10px; border-bottom: 1px solid #eaeef2; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }} .story li {{ font-weight: 600; }} .ok {{ color: #1a7f37; }} .bad {{ color: #cf222e; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 16px; }} svg {{ border: 1px solid #d0d7de; border-radius: 6px; font-family: system-ui, sans-serif; }}
</style></head><body><h1>wirepact devnet report</h1><div class="sub">{} epochs of {} s · chain {} · market <code>{}</code> · token <code>{}</code></div>"#,
        s["epochs"],
        s["epoch_seconds"],
        s["chain_id"],
        text(&s["market"]),
        text(&s["token"])
    );
    o.push_str("<h2>What happened</h2><ul class=\"story\">");
    let story = s["story"].as_array().cloned().unwrap_or_default();
    if story.is_empty() {
        o.push_str("<li>no slash and no bonus in this run</li>");
    }
    for l in &story {
        let _ = write!(o, "<li>{}</li>", text(l));
    }
    o.push_str("</ul>");

    o.push_str("<h2>Providers</h2><table><tr><th>provider</th><th>price/GiB</th><th>stake at start</th><th>stake at end</th><th>violations</th><th>paid by sessions</th><th>bonus</th><th>earned in all</th><th>bytes claimed</th></tr>");
    for p in s["providers"].as_array().cloned().unwrap_or_default() {
        let _ = write!(
            o,
            "<tr><td>{} (#{})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td><td>{}</td></tr>",
            text(&p["name"]),
            p["id"],
            text(&p["price_per_gib"]),
            text(&p["stake_start"]),
            text(&p["stake_end"]),
            p["violations"],
            text(&p["earned"]),
            text(&p["bonus"]),
            text(&p["earned_total"]),
            p["bytes_claimed"]
        );
    }
    o.push_str("</table><p class=\"sub\">Amounts in tokens.</p>");

    o.push_str("<h2>Over the epochs</h2><div class=\"plots\">");
    o.push_str(&chart("Earnings (market balance + unclaimed)", "tokens", &per_provider(s, "earned")));
    o.push_str(&chart("Stake", "tokens", &per_provider(s, "stake")));
    o.push_str(&chart("Violations recorded", "violations", &per_provider(s, "violations")));
    o.push_str("</div>");

    o.push_str("<h2>Oracles</h2><table><tr><th>oracle</th><th>stake at start</th><th>stake at end</th><th>paid for reports</th><th>reports submitted</th><th></th></tr>");
    for x in s["oracles"].as_array().cloned().unwrap_or_default() {
        let lies = x["lies"].as_bool().unwrap_or(false);
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&x["name"]),
            text(&x["stake_start"]),
            text(&x["stake"]),
            text(&x["report_rewards"]),
            x["reports_submitted"],
            if lies { "lied on every probe: outvoted by the median" } else { "" }
        );
    }
    o.push_str("</table>");

    let check = |ok: bool| if ok { "<span class=\"ok\">exact</span>" } else { "<span class=\"bad\">MISMATCH</span>" };
    let _ = write!(
        o,
        "<h2>Money</h2><p>The market holds {} tokens and owes {} tokens: {}.<br>Token supply {} = wallets + market {}: {}.<br>The client fetched {} bytes ({} errors); protocol fees {} tokens; {} reports accepted.</p>",
        text(&s["market_holds"]),
        text(&s["market_owes"]),
        check(s["books_balanced"].as_bool().unwrap_or(false)),
        text(&s["token_total_supply"]),
        text(&s["token_accounted"]),
        check(s["token_conserved"].as_bool().unwrap_or(false)),
        s["client_bytes_fetched"],
        s["client_fetch_errors"],
        text(&s["protocol_fees"]),
        s["reports"]
    );
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_tells_the_slash_and_plots_every_provider_over_the_epochs() {
        let s = serde_json::json!({
            "epochs": 2, "epoch_seconds": 12, "chain_id": 31337, "market": "0xm", "token": "0xt",
            "story": ["oversold SLASHED: 10 tokens <of its stake>"],
            "providers": [
                { "name": "honest", "id": 1, "price_per_gib": "0.1", "stake_start": "100", "stake_end": "100", "violations": 0,
                  "earned": "1.5", "bonus": "0.25", "earned_total": "1.75", "bytes_claimed": 7 },
                { "name": "oversold", "id": 2, "price_per_gib": "0.12", "stake_start": "100", "stake_end": "90", "violations": 2,
                  "earned": "0", "bonus": "0", "earned_total": "0", "bytes_claimed": 0 },
            ],
            "timeline": [
                { "epoch": 0, "stake": ["100", "100"], "earned": ["0", "0"], "violations": [0, 0] },
                { "epoch": 1, "stake": ["100", "100"], "earned": ["0.5", "0"], "violations": [0, 1] },
                { "epoch": 2, "stake": ["100", "90"], "earned": ["1.75", "0"], "violations": [0, 2] },
            ],
            "oracles": [{ "name": "liar", "lies": true, "stake_start": "10", "stake": "10", "report_rewards": "0.3", "reports_submitted": 1 }],
            "market_holds": "5", "market_owes": "5", "books_balanced": true,
            "token_total_supply": "9", "token_accounted": "9", "token_conserved": true,
            "client_bytes_fetched": 7, "client_fetch_errors": 0, "protocol_fees": "0.01", "reports": 2,
        });
        let page = html(&s);
        assert!(page.contains("<li>oversold SLASHED: 10 tokens &lt;of its stake&gt;</li>"), "escaped story");
        assert!(page.contains("<td><b>1.75</b></td>"), "earned includes the bonus");
        assert_eq!(page.matches("<svg").count(), 3, "earnings, stake, violations");
        // Each chart has one line per provider with one point per epoch.
        assert_eq!(page.matches("<polyline").count(), 6);
        assert_eq!(page.matches("<circle").count(), 18);
        assert!(page.contains("lied on every probe"));
        assert!(!page.contains("MISMATCH"));
    }
}
