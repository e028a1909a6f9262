//! A progress line on stderr: an indicatif bar redrawn in place on a
//! terminal; one plain line per second otherwise (logs, CI), where indicatif
//! draws nothing, so long operations always show they move.

use std::io::IsTerminal;
use std::io::Write;
use std::time::Duration;
use std::time::Instant;

use indicatif::ProgressBar;
use indicatif::ProgressDrawTarget;
use indicatif::ProgressStyle;

/// Width of the bar, in characters.
const BAR_WIDTH: usize = 30;
/// Least time between two lines when stderr is not a terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(1);
/// Steps of the terminal bar: fractions are shown to a tenth of a percent.
const BAR_STEPS: u64 = 1000;

/// One operation's progress.
pub struct Progress {
    /// On a terminal, the bar; else `None` and plain lines.
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(BAR_STEPS), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("[{bar:30}] {percent:>3}%  {msg}")
                .expect("the template is a valid constant")
                .progress_chars("#>.");
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            last_line: None,
        }
    }

    /// Shows `fraction` done (0 to 1) and a status text.
    pub fn show(&mut self, fraction: f64, status: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position((clamped(fraction) * BAR_STEPS as f64).round() as u64);
            bar.set_message(status.to_owned());
        } else if self
            .last_line
            .is_none_or(|at| at.elapsed() >= LINE_INTERVAL)
        {
            self.last_line = Some(Instant::now());
            let _ = writeln!(std::io::stderr(), "{}", render(fraction, status));
        }
    }

    /// Ends the line on a terminal, leaving the last state shown.
    pub fn finish(&mut self) {
        if let Some(bar) = &self.bar
            && !bar.is_finished()
        {
            bar.abandon();
        }
    }
}

fn clamped(fraction: f64) -> f64 {
    if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// `[#########.....]  45%  status`.
pub fn render(fraction: f64, status: &str) -> String {
    let fraction = clamped(fraction);
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    format!(
        "[{}{}] {:>3.0}%  {status}",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        fraction * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_fraction() {
        assert_eq!(
            render(0.5, "5 left"),
            format!("[{}{}]  50%  5 left", "#".repeat(15), ".".repeat(15))
        );
        assert!(render(2.0, "").starts_with(&format!("[{}]", "#".repeat(30))));
        assert!(render(f64::NAN, "").contains("  0%"));
    }
}
