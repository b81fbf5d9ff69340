//! Starting a fleet of relays for the `cluster` tests: free loopback ports picked first (bind
//! :0, read, close), then one `mcp-relay serve --node rN --peer …` per port around the fixture.
//! Kept small; the shared harness's fleet helper replaces it once there.

use std::net::TcpListener;

use crate::support::{patience, Relay, FIXTURE};

/// A free loopback port (the kernel's pick, released at once).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `n` relays `r0`…, each with every replica as a peer (its own entry is ignored), `extra(i)`
/// more flags for relay `i`, and `child` as the fixture's arguments.
pub fn start(n: usize, extra: impl Fn(usize) -> Vec<String>, child: &[&str]) -> Vec<Relay> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("r{i}=http://127.0.0.1:{p}"))
        .collect();
    (0..n)
        .map(|i| {
            let mut args: Vec<String> = vec!["serve".into(), "--listen".into()];
            args.push(format!("127.0.0.1:{}", ports[i]));
            args.extend(["--node".into(), format!("r{i}")]);
            for p in &peers {
                args.extend(["--peer".into(), p.clone()]);
            }
            args.extend(extra(i));
            args.extend(["--".into(), FIXTURE.into()]);
            args.extend(child.iter().map(|a| a.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Relay::start_raw(&args)
        })
        .collect()
}

/// Sends `sig` to the relay (it keeps running until it decides to stop).
pub fn signal(relay: &Relay, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(relay.pid() as i32), sig).unwrap();
}

/// Waits (at most the patience) for the relay to exit on its own; its exit code.
pub async fn exited(relay: &mut Relay) -> Option<i32> {
    let deadline = std::time::Instant::now() + patience();
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = relay.child.try_wait() {
            return status.code();
        }
        // The poll interval of a wait for the exit, not a guess at how long it takes.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}
