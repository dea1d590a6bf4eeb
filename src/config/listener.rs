//! The Kafka listeners as flags and `listeners` give them: one or more `NAME://host:port`,
//! every one PLAINTEXT (a name is PLAINTEXT itself or mapped to it by
//! `listener.security.protocol.map`), and what each advertises (`advertised.listeners`).
//!
//! Several listeners serve the same brokers at different addresses: clients inside a
//! Kubernetes cluster on the pods' DNS names, clients outside through one Service per
//! broker. A client is told every broker's address *on the listener it connected to*,
//! as Kafka does. The first listener (or `inter.broker.listener.name`) is the broker's
//! own: its advertised host is where other brokers reach the raft transport.

use super::{BrokerConfig, ConfigError, advertise};
use crate::security::{SecurityError, SecurityProtocol};

/// Where a listener binds.
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

/// One Kafka listener: its name (upper case, `PLAINTEXT` when none is written) and where
/// it binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub addr: ListenAddr,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.name, self.addr)
    }
}

/// Which of the broker's listeners a connection came in on: its position in
/// [`Listeners`] (0 is the broker's own listener).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u8);

/// The broker's Kafka listeners, in order; never empty, names unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    first: Listener,
    more: Vec<Listener>,
}

/// At most this many listeners (a connection's listener is a `u8`; Kafka users run two
/// or three).
pub const MAX_LISTENERS: usize = 16;

impl Listeners {
    pub fn single(addr: ListenAddr) -> Listeners {
        Listeners { first: Listener { name: PLAINTEXT.into(), addr }, more: Vec::new() }
    }

    /// The broker's own listener (the inter-broker one, in Kafka's terms).
    pub fn primary(&self) -> &Listener {
        &self.first
    }

    pub fn iter(&self) -> impl Iterator<Item = &Listener> {
        std::iter::once(&self.first).chain(&self.more)
    }

    pub fn len(&self) -> usize {
        1 + self.more.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn get(&self, id: ListenerId) -> Option<&Listener> {
        match usize::from(id.0) {
            0 => Some(&self.first),
            i => self.more.get(i - 1),
        }
    }

    pub fn get_mut(&mut self, id: ListenerId) -> Option<&mut Listener> {
        match usize::from(id.0) {
            0 => Some(&mut self.first),
            i => self.more.get_mut(i - 1),
        }
    }

    pub fn by_name(&self, name: &str) -> Option<&Listener> {
        self.iter().find(|l| l.name.eq_ignore_ascii_case(name))
    }

    /// Makes the listener called `name` the broker's own (`inter.broker.listener.name`).
    pub fn make_primary(&mut self, name: &str) -> Result<(), String> {
        if self.first.name.eq_ignore_ascii_case(name) {
            return Ok(());
        }
        let Some(i) = self.more.iter().position(|l| l.name.eq_ignore_ascii_case(name)) else {
            return Err(format!("inter.broker.listener.name `{name}` is not one of the listeners ({self})"));
        };
        std::mem::swap(&mut self.first, &mut self.more[i]);
        // Keep the others in the order given.
        let moved = self.more.remove(i);
        self.more.insert(0, moved);
        Ok(())
    }

    /// Fails closed for a listener whose name no protocol map entry makes PLAINTEXT
    /// (`plaintext` holds the names `listener.security.protocol.map` maps to it).
    pub fn check_protocols(&self, plaintext: &[String]) -> Result<(), SecurityError> {
        for l in self.iter() {
            let mapped = plaintext.iter().any(|p| p.eq_ignore_ascii_case(&l.name));
            if l.name != PLAINTEXT && !mapped {
                return Err(SecurityError::UnknownListenerName { listener: l.to_string(), name: l.name.clone() });
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<String> = self.iter().map(Listener::to_string).collect();
        f.write_str(&all.join(","))
    }
}

const PLAINTEXT: &str = "PLAINTEXT";

/// One address: `host:port`, an empty host meaning all interfaces.
pub(super) fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    let s = crate::security::plaintext_listener(s).map_err(|e| e.to_string())?;
    parse_host_port(s)
}

fn parse_host_port(s: &str) -> Result<ListenAddr, String> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("`{s}`: expected host:port"))?;
    let port = port.parse::<u16>().map_err(|e| format!("`{s}`: bad port: {e}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok(ListenAddr { host: host.to_string(), port })
}

/// Splits `NAME://rest` into an upper-case name and the rest; a name that is a security
/// protocol Jet does not serve is refused here. No name: `None`.
fn split_name(one: &str) -> Result<(Option<String>, &str), String> {
    let Some((name, rest)) = one.split_once("://") else { return Ok((None, one)) };
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(format!("`{one}`: a listener name is letters, digits, `_` and `-`"));
    }
    match SecurityProtocol::from_name(name) {
        Some(SecurityProtocol::Plaintext) | None => Ok((Some(name.to_ascii_uppercase()), rest)),
        Some(protocol) => Err(SecurityError::UnsupportedProtocol { listener: one.to_string(), protocol }.to_string()),
    }
}

/// `listeners`: `NAME://host:port` entries separated by commas (a bare `host:port` is
/// `PLAINTEXT`). Names other than PLAINTEXT are checked against the protocol map once
/// every setting is read ([`Listeners::check_protocols`]).
pub(super) fn parse_listeners(s: &str) -> Result<Listeners, String> {
    let mut all: Vec<Listener> = Vec::new();
    for one in s.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, address) = split_name(one)?;
        let listener = Listener { name: name.unwrap_or_else(|| PLAINTEXT.into()), addr: parse_host_port(address)? };
        if all.iter().any(|l| l.name == listener.name) {
            return Err(format!("`{s}`: listener name {} is given twice", listener.name));
        }
        if listener.addr.port != 0 && all.iter().any(|l| l.addr.port == listener.addr.port) {
            return Err(format!("`{s}`: each listener needs its own port ({} is given twice)", listener.addr.port));
        }
        all.push(listener);
    }
    if all.len() > MAX_LISTENERS {
        return Err(format!("`{s}`: at most {MAX_LISTENERS} listeners"));
    }
    let mut all = all.into_iter();
    let first = all.next().ok_or_else(|| format!("`{s}`: no listener given"))?;
    Ok(Listeners { first, more: all.collect() })
}

/// One `advertised.listeners` entry: the listener it is for (`None`: the broker's own)
/// and the host and port clients are told (no port: the listener's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    pub name: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// `advertised.listeners`: `[NAME://]host[:port]` entries separated by commas (an IPv6
/// address in brackets; port 0 or none: the listener's bound port). An advertised listener
/// must be PLAINTEXT too: advertising `SSL://` while serving plaintext would send clients'
/// TLS to a plaintext port. A wildcard address reaches nobody and is refused, as Kafka does.
pub(super) fn parse_advertised_list(s: &str) -> Result<Vec<Advertised>, String> {
    let mut all: Vec<Advertised> = Vec::new();
    for one in s.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, address) = split_name(one)?;
        let (host, port) = split_host_port(address).map_err(|why| format!("`{one}`: {why}"))?;
        if host.is_empty() {
            return Err(format!("`{one}`: no host to advertise"));
        }
        if super::advertise::is_wildcard(host) {
            return Err(format!(
                "`{one}`: {host} is not an address clients can connect to; advertise a host name or address"
            ));
        }
        if all.iter().any(|a| a.name == name) {
            let which = name.as_deref().unwrap_or("without a name");
            return Err(format!("`{s}`: listener {which} is advertised twice"));
        }
        all.push(Advertised { name, host: host.to_string(), port });
    }
    if all.is_empty() {
        return Err(format!("`{s}`: no address given"));
    }
    Ok(all)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`: the host (brackets removed) and the port,
/// `None` when absent or 0.
fn split_host_port(address: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address without its closing bracket")?;
        match after {
            "" => (host, None),
            after => (host, Some(after.strip_prefix(':').ok_or("expected `:port` after the IPv6 address")?)),
        }
    } else {
        match address.matches(':').count() {
            0 => (address, None),
            1 => address.split_once(':').map(|(h, p)| (h, Some(p))).unwrap_or((address, None)),
            _ => return Err("write an IPv6 address in brackets: [fd00::1]:9092".into()),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().map_err(|e| format!("bad port `{p}`: {e}"))?).filter(|&p| p != 0),
    };
    Ok((host, port))
}

/// The clap parser of `--advertised-listener`: checked now, kept as written.
pub(super) fn parse_advertised(s: &str) -> Result<String, String> {
    parse_advertised_list(s)?;
    Ok(s.to_string())
}

/// What the broker's listeners advertise, and the checks once every setting is read.
impl BrokerConfig {
    /// The `host:port` advertised to clients of the broker's own listener.
    pub fn advertised(&self) -> (String, i32) {
        let (_, host, port) = self.advertised_on(ListenerId(0));
        (host, i32::from(port))
    }

    /// What each listener advertises, in listener order: (name, host, port).
    pub fn advertised_listeners(&self) -> Vec<(String, String, u16)> {
        (0..self.listen.len()).filter_map(|i| u8::try_from(i).ok()).map(|i| self.advertised_on(ListenerId(i))).collect()
    }

    /// (name, host, port) advertised for one listener: its `advertised.listeners` entry,
    /// else (as Kafka) the host it binds, or for a listener on all interfaces the host
    /// chosen at start (`localhost` when none was); the listener's port when the entry has
    /// none.
    fn advertised_on(&self, id: ListenerId) -> (String, String, u16) {
        let listener = self.listen.get(id).unwrap_or(self.listen.primary());
        let default_host = || match advertise::is_wildcard(&listener.addr.host) {
            true => self.default_advertised_host.clone().unwrap_or_else(|| "localhost".to_string()),
            false => listener.addr.host.clone(),
        };
        match self.advertised_entry(id) {
            Some(a) => (listener.name.clone(), a.host, a.port.unwrap_or(listener.addr.port)),
            None => (listener.name.clone(), default_host(), listener.addr.port),
        }
    }

    /// A listener's `advertised.listeners` entry (an entry without a name is the broker's
    /// own listener's: the first, or `inter.broker.listener.name`).
    fn advertised_entry(&self, id: ListenerId) -> Option<Advertised> {
        let listener = self.listen.get(id)?;
        let entries = self.advertised_listener.as_deref().map(parse_advertised_list).and_then(Result::ok)?;
        entries.into_iter().find(|a| match &a.name {
            Some(name) => name.eq_ignore_ascii_case(&listener.name),
            None => id.0 == 0,
        })
    }

    /// Whether a listener on all interfaces has no advertised address: the host to
    /// advertise for it is chosen at start ([`advertise`]).
    pub fn advertises_a_wildcard(&self) -> bool {
        self.listen.iter().enumerate().any(|(i, l)| {
            let id = ListenerId(u8::try_from(i).unwrap_or(u8::MAX));
            advertise::is_wildcard(&l.addr.host) && self.advertised_entry(id).is_none()
        })
    }

    /// Records the port a listener actually bound (the OS picks it for port 0), which is
    /// advertised wherever the advertised listener names no port of its own.
    pub fn bound_to(&mut self, id: ListenerId, port: u16) {
        if let Some(listener) = self.listen.get_mut(id) {
            listener.addr.port = port;
        }
    }

    /// Once every setting is read: every listener is PLAINTEXT or mapped to it,
    /// `inter.broker.listener.name` names a listener (it becomes the first), and every
    /// advertised listener is one of the listeners.
    pub fn check_listeners(&mut self) -> Result<(), ConfigError> {
        if let Some(name) = self.listener_names.inter_broker.clone() {
            self.listen.make_primary(&name).map_err(|reason| ConfigError::Listeners { reason })?;
        }
        self.listen.check_protocols(&self.listener_names.plaintext)?;
        if let Some(advertised) = &self.advertised_listener {
            let entries = parse_advertised_list(advertised).map_err(|reason| ConfigError::Listeners { reason })?;
            for a in entries {
                if let Some(name) = &a.name
                    && self.listen.by_name(name).is_none()
                {
                    return Err(ConfigError::Listeners {
                        reason: format!(
                            "advertised.listeners names listener {name}, which is not one of the listeners ({})",
                            self.listen
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_named_and_unique() {
        let l = parse_listeners("PLAINTEXT://:9092, external://0.0.0.0:9094").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l.primary().name, "PLAINTEXT");
        assert_eq!(l.get(ListenerId(1)).unwrap().name, "EXTERNAL");
        assert_eq!(l.get(ListenerId(1)).unwrap().addr.port, 9094);
        assert_eq!(l.to_string(), "PLAINTEXT://0.0.0.0:9092,EXTERNAL://0.0.0.0:9094");
        assert_eq!(parse_listeners("127.0.0.1:0").unwrap().primary().name, "PLAINTEXT");
        assert!(parse_listeners("A://:1,a://:2").unwrap_err().contains("given twice"));
        assert!(parse_listeners("A://:1,B://:1").unwrap_err().contains("its own port"));
        assert!(parse_listeners("A://:0,B://:0").is_ok(), "port 0 is any free port, each its own");
        assert!(parse_listeners(" , ").unwrap_err().contains("no listener"));
        let e = parse_listeners("PLAINTEXT://:9092,SSL://:9093").unwrap_err();
        assert!(e.contains("SSL") && e.contains("PLAINTEXT only"), "{e}");
    }

    #[test]
    fn a_name_must_be_mapped_to_plaintext() {
        let l = parse_listeners("INTERNAL://:9092,EXTERNAL://:9094").unwrap();
        let e = l.check_protocols(&["INTERNAL".into()]).unwrap_err();
        assert!(matches!(&e, SecurityError::UnknownListenerName { name, .. } if name == "EXTERNAL"), "{e}");
        assert!(e.to_string().contains("EXTERNAL:PLAINTEXT"), "{e}");
        l.check_protocols(&["INTERNAL".into(), "external".into()]).unwrap();
        parse_listeners(":9092").unwrap().check_protocols(&[]).unwrap();
    }

    #[test]
    fn the_inter_broker_listener_becomes_the_first() {
        let mut l = parse_listeners("EXTERNAL://:9094,INTERNAL://:9092,OTHER://:9095").unwrap();
        l.make_primary("internal").unwrap();
        assert_eq!(l.to_string(), "INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:9094,OTHER://0.0.0.0:9095");
        assert!(l.make_primary("NOPE").unwrap_err().contains("not one of the listeners"));
    }

    #[test]
    fn advertised_entries_parse_with_or_without_names_and_ports() {
        let a = parse_advertised_list("PLAINTEXT://pod-0.svc:9092,EXTERNAL://203.0.113.7:31092").unwrap();
        assert_eq!(a[0], Advertised { name: Some("PLAINTEXT".into()), host: "pod-0.svc".into(), port: Some(9092) });
        assert_eq!(a[1].port, Some(31092));
        let bare = parse_advertised_list("example").unwrap();
        assert_eq!(bare, vec![Advertised { name: None, host: "example".into(), port: None }]);
        assert_eq!(parse_advertised_list("[::1]:9092").unwrap()[0].host, "::1");
        assert_eq!(parse_advertised_list("[fd00::1]").unwrap()[0].host, "fd00::1");
        assert!(parse_advertised_list("fd00::1:2").unwrap_err().contains("brackets"));
        assert_eq!(parse_advertised_list("h:0").unwrap()[0].port, None, "port 0: the bound port");
        for wildcard in ["0.0.0.0:9092", "[::]:9092", "PLAINTEXT://0.0.0.0"] {
            assert!(parse_advertised_list(wildcard).unwrap_err().contains("not an address clients"), "{wildcard}");
        }
        assert!(parse_listeners("://:1").unwrap_err().contains("listener name"));
        assert!(parse_listeners("A B://:1").unwrap_err().contains("listener name"));
        assert!(parse_advertised_list("a:1,b:2").unwrap_err().contains("advertised twice"));
        assert!(parse_advertised_list("SASL_SSL://h:1").unwrap_err().contains("SASL_SSL"));
        assert!(parse_advertised_list("h:notaport").is_err());
    }
}
