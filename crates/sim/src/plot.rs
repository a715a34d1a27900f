//! The report as a picture: detection by behaviour, price against utilisation, and the day's
//! demand, utilisation and jail count (SVG, plotters).

use plotters::prelude::*;

use crate::report::Report;
use crate::SimError;

fn err<E: std::error::Error + Send + Sync + 'static>(e: E) -> SimError {
    SimError::Output(Box::new(e))
}

/// Writes the report's plot to `path` (SVG).
pub fn write_svg(r: &Report, path: &std::path::Path) -> Result<(), SimError> {
    let root = SVGBackend::new(path, (1200, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, 3));

    // 1. Share slashed per group (and by the third audit).
    {
        let n = r.detection.len().max(1);
        let mut c = ChartBuilder::on(&panels[0])
            .caption("slashed share by group", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..n as f64, 0f64..1.05f64)
            .map_err(err)?;
        let names: Vec<String> = r.detection.iter().map(|d| d.group.clone()).collect();
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let i = x.floor() as usize;
                names.get(i).cloned().unwrap_or_default()
            })
            .y_desc("share of providers")
            .draw()
            .map_err(err)?;
        c.draw_series(r.detection.iter().enumerate().map(|(i, d)| {
            let x = i as f64;
            Rectangle::new([(x + 0.1, 0.0), (x + 0.45, d.slashed_share)], RED.mix(0.6).filled())
        }))
        .map_err(err)?
        .label("slashed in the run")
        .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 10, y + 4)], RED.mix(0.6).filled()));
        c.draw_series(r.detection.iter().enumerate().map(|(i, d)| {
            let x = i as f64;
            Rectangle::new([(x + 0.5, 0.0), (x + 0.85, d.slashed_within_three_audits_share)], BLUE.mix(0.6).filled())
        }))
        .map_err(err)?
        .label("by the 3rd audit")
        .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 10, y + 4)], BLUE.mix(0.6).filled()));
        c.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(err)?;
    }

    // 2. Price over base price against utilisation after the session.
    {
        let top = r.price_vs_utilisation.iter().map(|p| p.mean_price_over_base).fold(1.0f64, f64::max) * 1.1;
        let mut c = ChartBuilder::on(&panels[1])
            .caption("price vs utilisation", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1f64, 0.9f64..top)
            .map_err(err)?;
        c.configure_mesh().x_desc("utilisation after the session").y_desc("price / base price").draw().map_err(err)?;
        c.draw_series(LineSeries::new(
            r.price_vs_utilisation
                .iter()
                .map(|p| ((p.utilisation_from + p.utilisation_to) / 2.0, p.mean_price_over_base)),
            &BLUE,
        ))
        .map_err(err)?;
        c.draw_series(r.price_vs_utilisation.iter().map(|p| {
            Circle::new(((p.utilisation_from + p.utilisation_to) / 2.0, p.mean_price_over_base), 3, BLUE.filled())
        }))
        .map_err(err)?;
    }

    // 3. The day: demand, utilisation, share of providers jailed.
    {
        let last = r.series.last().map_or(1.0, |p| p.epoch as f64 + 1.0);
        let providers = f64::from(r.providers.max(1));
        let mut c = ChartBuilder::on(&panels[2])
            .caption("the day", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..last, 0f64..1.05f64)
            .map_err(err)?;
        c.configure_mesh().x_desc("epoch").draw().map_err(err)?;
        c.draw_series(LineSeries::new(r.series.iter().map(|p| (p.epoch as f64, p.demand)), &BLACK))
            .map_err(err)?
            .label("demand (share of peak)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLACK));
        c.draw_series(LineSeries::new(r.series.iter().map(|p| (p.epoch as f64, p.utilisation)), &BLUE))
            .map_err(err)?
            .label("utilisation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
        c.draw_series(LineSeries::new(r.series.iter().map(|p| (p.epoch as f64, p.jailed as f64 / providers)), &RED))
            .map_err(err)?
            .label("jailed share")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
        c.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
