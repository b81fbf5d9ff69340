//! A fleet of relays for the `[cluster]` tests: N `mcp-relay serve` processes on loopback
//! ports picked before any starts (each knows every other as `--peer rI=URL`), each with its
//! own admin listener, extra arguments per relay, one killed with SIGKILL or restarted on the
//! same ports. Clients and the relay process itself are in the sibling files.

use super::{patience, Relay, FIXTURE};

/// `n` distinct free loopback ports: bound on :0, read, then closed (all held until every one
/// is read, so none repeats).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// N relays named `r0`, `r1`, … that know each other.
pub struct Fleet {
    /// `None` while a relay is killed.
    pub relays: Vec<Option<Relay>>,
    /// Main listener port of each relay.
    pub ports: Vec<u16>,
    /// Admin listener port of each relay (`/metrics`, `/health`, `/ready`).
    pub admin_ports: Vec<u16>,
    /// Extra `serve` arguments of each relay (kept for restarts).
    pub extra: Vec<Vec<String>>,
    /// The command after `--` (the child), kept for restarts.
    pub child: Vec<String>,
    /// Environment variables of every relay.
    pub env: Vec<(String, String)>,
}

impl Fleet {
    /// `n` relays, each `serve --listen 127.0.0.1:P --admin-listen 127.0.0.1:Q --node rI
    /// --peer r0=… --peer r1=… <extra(I)> -- <fixture> <child_args>`.
    pub fn start(n: usize, extra: impl Fn(usize) -> Vec<String>, child_args: &[&str]) -> Fleet {
        let mut child = vec![FIXTURE.to_owned()];
        child.extend(child_args.iter().map(|s| (*s).to_owned()));
        Fleet::start_with_child(n, extra, child)
    }

    /// Like [`Fleet::start`] with any child command (e.g. `[RELAY, "demo-server"]`), or none
    /// (`vec![]`: `[servers]` in a `--config` file among the extra arguments).
    pub fn start_with_child(
        n: usize,
        extra: impl Fn(usize) -> Vec<String>,
        child: Vec<String>,
    ) -> Fleet {
        Fleet::start_with_env(n, extra, child, Vec::new())
    }

    /// Like [`Fleet::start_with_child`], with environment variables for every relay (secrets
    /// given as `env:NAME`; the test process's own environment is never changed).
    pub fn start_with_env(
        n: usize,
        extra: impl Fn(usize) -> Vec<String>,
        child: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Fleet {
        let ports = free_ports(2 * n);
        let mut fleet = Fleet {
            relays: (0..n).map(|_| None).collect(),
            admin_ports: ports[n..].to_vec(),
            ports: ports[..n].to_vec(),
            extra: (0..n).map(extra).collect(),
            child,
            env,
        };
        for i in 0..n {
            fleet.restart(i);
        }
        fleet
    }

    /// The node name of relay `i`.
    pub fn node(i: usize) -> String {
        format!("r{i}")
    }

    /// `http://127.0.0.1:P` of relay `i`.
    pub fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// The Streamable HTTP endpoint of relay `i`.
    pub fn url(&self, i: usize) -> String {
        format!("{}/mcp", self.base(i))
    }

    /// The admin listener of relay `i`.
    pub fn admin(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.admin_ports[i])
    }

    /// The running relay `i` (panics while it is killed).
    pub fn relay(&self, i: usize) -> &Relay {
        self.relays[i].as_ref().expect("relay is not running")
    }

    /// The arguments relay `i` is started with.
    pub fn args(&self, i: usize) -> Vec<String> {
        let mut args: Vec<String> = vec!["serve".into(), "--listen".into()];
        args.push(format!("127.0.0.1:{}", self.ports[i]));
        args.push("--admin-listen".into());
        args.push(format!("127.0.0.1:{}", self.admin_ports[i]));
        args.push("--node".into());
        args.push(Fleet::node(i));
        for j in 0..self.ports.len() {
            args.push("--peer".into());
            args.push(format!("{}={}", Fleet::node(j), self.base(j)));
        }
        args.extend(self.extra[i].iter().cloned());
        // No child command: the servers come from a config file among the extra arguments.
        if !self.child.is_empty() {
            args.push("--".into());
            args.extend(self.child.iter().cloned());
        }
        args
    }

    /// Starts relay `i` again on its ports (after [`Fleet::kill`]), or the first time.
    pub fn restart(&mut self, i: usize) {
        let args = self.args(i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.relays[i] = Some(Relay::start_env(&args, &env));
    }

    /// SIGKILL to relay `i` (its pid), waited for; its children die with it (parent-death
    /// signal).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut r) = self.relays[i].take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    /// The `/metrics` text of relay `i`.
    pub async fn metrics(&self, i: usize) -> String {
        let res = reqwest::Client::new()
            .get(format!("{}/metrics", self.admin(i)))
            .timeout(patience())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }
}

/// The value of one series of a `/metrics` text (name with its labels, exactly as exposed);
/// 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
