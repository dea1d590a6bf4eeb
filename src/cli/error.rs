//! What can go wrong in an admin command, and the exit code each failure maps to.
//!
//! Every error renders as one line that names the cause: a Kafka error code by Kafka's
//! own name (`TOPIC_ALREADY_EXISTS`) with the broker's message, or the address that could
//! not be reached. Scripts branch on the exit code: 1 when the cluster refused or failed a
//! request, 3 when no broker could be reached or a connection broke, 4 when a response
//! could not be understood (2 is clap's, for bad arguments).

use std::process::ExitCode;

use kafka_protocol::messages::ApiKey;

use crate::metrics::errors::error_name;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A Kafka error code in a response.
    #[error("{context}: {name} ({code}){}", message_suffix(.message))]
    Kafka { context: String, code: i16, name: String, message: Option<String> },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("cannot connect to {addr}: no answer within {timeout_ms} ms")]
    ConnectTimeout { addr: String, timeout_ms: u64 },
    #[error("no broker reachable (tried {tried}): {last}")]
    NoBrokerReachable { tried: String, last: Box<CliError> },
    #[error("{api:?} to {addr}: no response within {timeout_ms} ms")]
    RequestTimeout { api: ApiKey, addr: String, timeout_ms: u64 },
    #[error("{api:?} to {addr} failed: {source}")]
    Io { api: ApiKey, addr: String, source: std::io::Error },
    #[error("{api:?} response from {addr}: frame of {size} bytes exceeds the {max}-byte cap")]
    ResponseTooLarge { api: ApiKey, addr: String, size: i64, max: usize },
    #[error("{api:?} v{version} response from {addr} is malformed: {cause:#}")]
    Decode { api: ApiKey, version: i16, addr: String, cause: anyhow::Error },
    #[error("cannot encode {api:?} v{version} request: {cause:#}")]
    Encode { api: ApiKey, version: i16, cause: anyhow::Error },
    #[error("{api:?} response from {addr} has correlation id {got}, expected {expected}")]
    CorrelationMismatch { api: ApiKey, addr: String, got: i32, expected: i32 },
    #[error("broker {addr} does not support {api:?} in a version this client speaks ({ours}; broker: {theirs})")]
    UnsupportedApi { api: ApiKey, addr: String, ours: String, theirs: String },
    #[error("broker {0} is not in the cluster metadata")]
    UnknownBroker(i32),
    #[error("{0}")]
    Records(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read standard input: {0}")]
    Stdin(std::io::Error),
    #[error("cannot write output: {0}")]
    Stdout(std::io::Error),
    #[error("cannot render JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot install the Ctrl-C handler: {0}")]
    Signal(std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// `cluster health` found problems (already printed).
    #[error("cluster is unhealthy: {0}")]
    Unhealthy(String),
}

fn message_suffix(message: &Option<String>) -> String {
    match message.as_deref() {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

impl CliError {
    /// `Err(Kafka)` for a non-zero error code.
    pub fn check(code: i16, message: Option<&str>, context: impl FnOnce() -> String) -> Result<(), CliError> {
        if code == 0 {
            return Ok(());
        }
        Err(CliError::kafka(code, message, context()))
    }

    /// A Kafka error code (non-zero) as an error.
    pub fn kafka(code: i16, message: Option<&str>, context: impl Into<String>) -> CliError {
        CliError::Kafka { context: context.into(), code, name: error_name(code), message: message.map(str::to_string) }
    }

    /// Standard output was closed by its reader (`jet consume … | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Stdout(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The Kafka error code, if this is one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            CliError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Connect { .. }
            | CliError::ConnectTimeout { .. }
            | CliError::NoBrokerReachable { .. }
            | CliError::RequestTimeout { .. }
            | CliError::Io { .. } => ExitCode::from(3),
            CliError::ResponseTooLarge { .. }
            | CliError::Decode { .. }
            | CliError::CorrelationMismatch { .. }
            | CliError::Records(_) => ExitCode::from(4),
            _ => ExitCode::from(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_name_the_code_and_carry_the_message() {
        let e = CliError::check(36, Some("Topic 'a' already exists."), || "create topic a".into()).unwrap_err();
        assert_eq!(e.to_string(), "create topic a: TOPIC_ALREADY_EXISTS (36): Topic 'a' already exists.");
        let e = CliError::check(3, None, || "describe t".into()).unwrap_err();
        assert_eq!(e.to_string(), "describe t: UNKNOWN_TOPIC_OR_PARTITION (3)");
        assert!(CliError::check(0, Some("x"), || unreachable!()).is_ok());
    }
}
