//! Reading a Kafka `server.properties` file: Java properties syntax as Kafka users write
//! it — `key=value` (or `key:value`, `key value`), `#` and `!` comments, blank lines,
//! and a trailing `\` continuing a value on the next line.

use std::path::Path;

/// One `key=value` of a properties file, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A properties file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    #[error("config file {path}: cannot read it: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}:{line}: `{text}` has no value (expected key=value)")]
    NoValue { path: String, line: usize, text: String },
    #[error("{path}:{line}: `{key}` is set twice (first on line {first})")]
    Duplicate { path: String, line: usize, key: String, first: usize },
}

/// Reads and parses a properties file.
pub fn read(path: &Path) -> Result<Vec<Property>, PropertiesError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PropertiesError::Read { path: path.display().to_string(), source })?;
    parse(&path.display().to_string(), &text)
}

/// Parses properties text; `path` only names the file in errors. A key set twice is
/// refused (Java keeps the last silently; in a broker's config that hides a mistake).
pub fn parse(path: &str, text: &str) -> Result<Vec<Property>, PropertiesError> {
    let mut out: Vec<Property> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let start = index + 1;
        let mut logical = raw.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let split = logical.find(['=', ':']).or_else(|| logical.find(char::is_whitespace));
        let Some(at) = split else {
            return Err(PropertiesError::NoValue { path: path.to_string(), line: start, text: logical });
        };
        let key = logical[..at].trim().to_string();
        let value = logical[at + 1..].trim().to_string();
        if let Some(first) = out.iter().find(|p| p.key == key) {
            return Err(PropertiesError::Duplicate { path: path.to_string(), line: start, key, first: first.line });
        }
        out.push(Property { key, value, line: start });
    }
    Ok(out)
}

/// An odd number of trailing backslashes continues the line (an even number is escaped).
fn ends_with_continuation(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_style_lines_comments_and_continuations() {
        let text = "# Licensed to the ASF\n\n! old-style comment\nnode.id=1\nlisteners = PLAINTEXT://:9092\nlog.dirs: /var/lib/kafka\nnum.partitions 3\nlistener.security.protocol.map=CONTROLLER:PLAINTEXT,\\\n    PLAINTEXT:PLAINTEXT\nempty=\n";
        let p = parse("server.properties", text).unwrap();
        let kv: Vec<(&str, &str, usize)> = p.iter().map(|p| (p.key.as_str(), p.value.as_str(), p.line)).collect();
        assert_eq!(
            kv,
            vec![
                ("node.id", "1", 4),
                ("listeners", "PLAINTEXT://:9092", 5),
                ("log.dirs", "/var/lib/kafka", 6),
                ("num.partitions", "3", 7),
                ("listener.security.protocol.map", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT", 8),
                ("empty", "", 10),
            ]
        );
    }

    #[test]
    fn a_line_without_value_and_a_key_set_twice_name_file_and_line() {
        let e = parse("s.properties", "a=1\nnovalue\n").unwrap_err().to_string();
        assert_eq!(e, "s.properties:2: `novalue` has no value (expected key=value)");
        let e = parse("s.properties", "a=1\nb=2\na=3\n").unwrap_err().to_string();
        assert_eq!(e, "s.properties:3: `a` is set twice (first on line 1)");
    }
}
