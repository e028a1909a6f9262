//! A progress line on stderr: redrawn in place on a terminal, one line per
//! second otherwise (logs, CI), so long operations always show they move.

use std::io::IsTerminal;
use std::io::Write;
use std::time::Duration;
use std::time::Instant;

/// Width of the bar, in characters.
const BAR_WIDTH: usize = 30;
/// Least time between two lines when stderr is not a terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(1);

/// One operation's progress.
pub struct Progress {
    terminal: bool,
    last_line: Option<Instant>,
    drawn: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            last_line: None,
            drawn: false,
        }
    }

    /// Shows `fraction` done (0 to 1) and a status text.
    pub fn show(&mut self, fraction: f64, status: &str) {
        let line = render(fraction, status);
        let mut stderr = std::io::stderr();
        if self.terminal {
            let _ = write!(stderr, "\r\x1b[2K{line}");
            let _ = stderr.flush();
            self.drawn = true;
        } else if self
            .last_line
            .is_none_or(|at| at.elapsed() >= LINE_INTERVAL)
        {
            self.last_line = Some(Instant::now());
            let _ = writeln!(stderr, "{line}");
        }
    }

    /// Ends the line on a terminal.
    pub fn finish(&mut self) {
        if self.terminal && self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
    }
}

/// `[#########.....]  45%  status`.
pub fn render(fraction: f64, status: &str) -> String {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
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
