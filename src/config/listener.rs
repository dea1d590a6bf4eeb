//! The Kafka listener's address as flags and `listeners` give it.

/// Where the Kafka listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

pub(super) fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    let s = crate::security::plaintext_listener(s).map_err(|e| e.to_string())?;
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("`{s}`: expected host:port"))?;
    let port = port.parse::<u16>().map_err(|e| format!("`{s}`: bad port: {e}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok(ListenAddr { host: host.to_string(), port })
}

/// An advertised listener must be PLAINTEXT too: advertising `SSL://` while serving
/// plaintext would send clients' TLS to a plaintext port.
pub(super) fn parse_advertised(s: &str) -> Result<String, String> {
    crate::security::plaintext_listener(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}
