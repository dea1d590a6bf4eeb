//! What a broker bound to all interfaces advertises when no advertised listener is
//! given: like Kafka, the host's canonical name — when it resolves to an address of this
//! machine, so that clients here (and, when DNS agrees, elsewhere) can reach it.
//! Otherwise a local non-loopback address, else `localhost`, with the reason logged.

use std::ffi::{CStr, CString};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};

/// The host to advertise and why it was chosen (for the start-up log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedHost {
    pub host: String,
    pub reason: String,
}

/// Whether a listener host binds every interface.
pub fn is_wildcard(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// Picks the host for a wildcard listener.
pub fn for_wildcard_listener() -> AdvertisedHost {
    let name = match canonical_hostname() {
        Ok(name) => name,
        Err(why) => return fallback(format!("the host name is unknown ({why})")),
    };
    match resolves_locally(&name) {
        Ok(ip) => AdvertisedHost {
            reason: format!("the host's canonical name (resolves to {ip}, an address of this host)"),
            host: name,
        },
        Err(why) => fallback(format!("the host name `{name}` {why}")),
    }
}

fn fallback(why: String) -> AdvertisedHost {
    match outbound_address() {
        Some(ip) => AdvertisedHost {
            host: ip.to_string(),
            reason: format!(
                "{why}: advertising this host's outbound address instead; set advertised.listeners to choose"
            ),
        },
        None => AdvertisedHost {
            host: "localhost".into(),
            reason: format!(
                "{why} and this host has no outbound address: advertising localhost (local clients only); set advertised.listeners to choose"
            ),
        },
    }
}

/// `gethostname` then `getaddrinfo(AI_CANONNAME)`, as Java's `getCanonicalHostName`
/// (which Kafka uses) resolves it; the plain name when there is no canonical one.
fn canonical_hostname() -> Result<String, String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its length; the result is NUL-terminated on success.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let name = CStr::from_bytes_until_nul(&buf).map_err(|e| e.to_string())?.to_string_lossy().into_owned();
    if name.is_empty() {
        return Err("gethostname returned an empty name".into());
    }
    let c_name = CString::new(name.clone()).map_err(|e| e.to_string())?;
    // SAFETY: zeroed addrinfo is a valid hints value; getaddrinfo's result is freed below.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut result: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated name, valid hints, out-pointer to a local.
    let rc = unsafe { libc::getaddrinfo(c_name.as_ptr(), std::ptr::null(), &hints, &mut result) };
    if rc != 0 || result.is_null() {
        return Ok(name);
    }
    // SAFETY: result is a valid list from getaddrinfo; ai_canonname is NUL-terminated or null.
    let canonical = unsafe {
        let canon = (*result).ai_canonname;
        let canonical = (!canon.is_null()).then(|| CStr::from_ptr(canon).to_string_lossy().into_owned());
        libc::freeaddrinfo(result);
        canonical
    };
    Ok(canonical.filter(|c| !c.is_empty()).unwrap_or(name))
}

/// The first address `name` resolves to that belongs to this host (binding it works).
fn resolves_locally(name: &str) -> Result<IpAddr, String> {
    let addrs: Vec<SocketAddr> = (name, 0).to_socket_addrs().map_err(|e| format!("does not resolve ({e})"))?.collect();
    addrs
        .iter()
        .map(SocketAddr::ip)
        .find(|ip| UdpSocket::bind((*ip, 0)).is_ok())
        .ok_or_else(|| format!("resolves to {addrs:?}, none of them an address of this host"))
}

/// The local address the kernel would send from to a public address (a UDP `connect`
/// sends nothing); `None` without a route.
fn outbound_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    socket.connect(("192.0.2.1", 9)).ok()?; // TEST-NET-1: only the routing table is consulted
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(is_wildcard("0.0.0.0"));
        assert!(is_wildcard("::"));
        assert!(!is_wildcard("127.0.0.1"));
        assert!(!is_wildcard("example.com"));
    }

    #[test]
    fn the_advertised_host_is_reachable_from_here() {
        let chosen = for_wildcard_listener();
        assert!(!chosen.host.is_empty(), "{chosen:?}");
        // Whatever was chosen resolves to an address of this host.
        let local = resolves_locally(&chosen.host);
        assert!(local.is_ok() || chosen.host == "localhost", "{chosen:?}: {local:?}");
        if let Ok(name) = canonical_hostname()
            && resolves_locally(&name).is_ok()
        {
            assert_eq!(chosen.host, name, "a host name that resolves here is advertised: {chosen:?}");
        }
    }
}
