//! Progress for a person at a terminal (a bar) or for a log (one line per progress event, as
//! docs/contract.md says; the encoder paces its events so a long job stays readable).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::job::JobEvent;

/// Shows job events on stdout.
pub struct ProgressView {
    bar: Option<ProgressBar>,
}

impl ProgressView {
    /// A bar when stdout is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:>7} [{bar:40}] {pos:>3}% {msg}")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self { bar }
    }

    /// Shows one event.
    pub fn show(&self, event: &JobEvent) {
        match (event, &self.bar) {
            (JobEvent::Stage(stage), Some(bar)) => bar.set_prefix(stage.as_str()),
            (JobEvent::Stage(stage), None) => println!("stage {}", stage.as_str()),
            (JobEvent::Progress(p), Some(bar)) => {
                bar.set_position(p.percent as u64);
                bar.set_message(details(p));
            }
            (JobEvent::Progress(p), None) => println!("progress {:5.1}% {}", p.percent, details(p)),
            (JobEvent::Playable { master }, _) => self.note(&format!("playable {master}")),
        }
    }

    /// Prints a line above the bar (or as a plain line).
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn details(p: &crate::encode::Progress) -> String {
    let mut parts = Vec::new();
    if let Some(fps) = p.fps {
        parts.push(format!("fps={fps:.1}"));
    }
    if let Some(speed) = p.speed {
        parts.push(format!("speed={speed:.2}x"));
    }
    if let Some(eta) = p.eta_s {
        parts.push(format!("eta={:.0}s", eta.ceil()));
    }
    parts.join(" ")
}
