//! Logging set-up shared by every function, and the metrics
//! ([`metrics`]): CloudWatch Embedded Metric Format lines on stdout.

pub mod metrics;

/// Installs the tracing subscriber: JSON when Lambda asks for it
/// (`AWS_LAMBDA_LOG_FORMAT=JSON`), plain text otherwise; the level comes from
/// `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default `info`).
pub fn init_logging() {
    lambda_http::tracing::init_default_subscriber();
}

/// An error and every cause below it, for the logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
