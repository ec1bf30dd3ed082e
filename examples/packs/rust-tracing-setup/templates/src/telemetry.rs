//! Logging and tracing setup for {{crate_name}}.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Output format, chosen by the `LOG_FORMAT` environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl LogFormat {
    pub fn from_env() -> Self {
        match std::env::var("LOG_FORMAT").as_deref() {
            Ok("json") => LogFormat::Json,
            _ => LogFormat::Pretty,
        }
    }
}

/// Installs the global subscriber. Call once, at the start of `main`.
pub fn init() {
    init_with(LogFormat::from_env());
}

pub fn init_with(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,{{crate_name}}=debug"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_current_span(true).with_target(true))
            .init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_target(false).compact())
            .init(),
    }
    tracing::debug!(?format, "tracing initialised");
}
