//! Structured logs through tracing: text or JSON lines on stderr, level from
//! the config (`log level=...`), overridable with `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::tables::LogTable;

pub fn init(log: &LogTable) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("mailc={},warn", log.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Installing twice (only in tests) is harmless; ignore the error.
    let _ = if log.format == "json" {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}
