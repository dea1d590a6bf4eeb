//! Brokers on hosts of their own: one Linux network namespace per broker, joined through
//! veth pairs to a bridge in the test's namespace, so a test can cut one broker off (its
//! bridge port down: packets to it are dropped silently, as by a failed link) and still
//! reach it from inside its namespace.
//!
//! Needs root and `ip` (iproute2). When the namespaces cannot be made the test fails,
//! unless `JET_SKIP_NETNS_TESTS=1` says to skip it. Everything made is removed on drop.

use std::net::Ipv4Addr;
use std::process::Command;

/// `count` hosts at `10.213.<subnet>.1..=count`; the test is `10.213.<subnet>.254`.
pub struct Hosts {
    tag: String,
    subnet: u8,
    count: usize,
    /// Namespaces made so far (removed on drop).
    made: Vec<String>,
    bridge_made: bool,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let shown = format!("{program} {}", args.join(" "));
    let out = Command::new(program).args(args).output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("{shown}: {}", String::from_utf8_lossy(&out.stderr).trim())) }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

impl Hosts {
    /// Makes `count` hosts; `None` when they cannot be made and `JET_SKIP_NETNS_TESTS=1`
    /// is set (the reason is printed), a failed test otherwise.
    pub fn create(count: usize) -> Option<Hosts> {
        let pid = std::process::id();
        let mut hosts = Hosts {
            tag: format!("jt{}", pid % 100_000),
            subnet: u8::try_from(pid % 250).unwrap_or(0) + 1,
            count,
            made: Vec::new(),
            bridge_made: false,
        };
        match hosts.make() {
            Ok(()) => Some(hosts),
            Err(e) if std::env::var("JET_SKIP_NETNS_TESTS").as_deref() == Ok("1") => {
                eprintln!("SKIPPED: cannot make network namespaces ({e}); JET_SKIP_NETNS_TESTS=1");
                None
            }
            Err(e) => panic!(
                "cannot make network namespaces: {e}\nthe partition tests need root and iproute2; set \
                 JET_SKIP_NETNS_TESTS=1 to skip them"
            ),
        }
    }

    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    fn namespace(&self, host: usize) -> String {
        format!("{}-{host}", self.tag)
    }

    fn make(&mut self) -> Result<(), String> {
        let bridge = self.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        self.bridge_made = true;
        ip(&["addr", "add", &format!("10.213.{}.254/24", self.subnet), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for host in 1..=self.count {
            let ns = self.namespace(host);
            ip(&["netns", "add", &ns])?;
            self.made.push(ns.clone());
            let veth = self.veth(host);
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.addr(host)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Host `host`'s address (1-based).
    pub fn addr(&self, host: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, u8::try_from(host).expect("a small host number"))
    }

    /// `program` run inside host `host`'s namespace.
    pub fn command(&self, host: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespace(host), program]);
        cmd
    }

    /// Cuts host `host` off from the others and from the test (its port on the bridge
    /// goes down): what the others send it is dropped silently, as by a failed link or
    /// switch port. The test reaches it only from inside its namespace
    /// ([`command`](Self::command)) then.
    pub fn isolate(&self, host: usize) {
        ip(&["link", "set", &self.veth(host), "down"]).expect("the bridge port down");
    }

    /// Undoes [`isolate`](Self::isolate).
    pub fn heal(&self, host: usize) {
        ip(&["link", "set", &self.veth(host), "up"]).expect("the bridge port up");
    }

    fn veth(&self, host: usize) -> String {
        format!("{}v{host}", self.tag)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // The namespace goes once its processes have (the brokers are dropped first), and
        // with it its end of a veth pair; the pair is deleted here in any case.
        for (host, ns) in self.made.iter().enumerate() {
            let _ = ip(&["link", "del", &self.veth(host + 1)]);
            let _ = ip(&["netns", "del", ns]);
        }
        if self.bridge_made {
            let _ = ip(&["link", "del", &self.bridge()]);
        }
    }
}
