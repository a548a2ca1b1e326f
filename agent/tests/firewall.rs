//! The firewall with the real nft: the printed ruleset passes `nft -c`, and loaded in a network
//! namespace of its own (a veth pair to this one), it lets through exactly what it should:
//! ssh, env.yml's extra port and ping, over IPv4 and IPv6; a closed port drops (no RST).
//! The host's own rules are never touched.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host_util::{CommandExt, Tool};

const NFT: Tool = Tool::new("nft", "nftables");
const IP: Tool = Tool::new("ip", "iproute2");
const PING: Tool = Tool::new("ping", "iputils-ping");

/// A namespace `ecsfw<pid>` with veth `vfo<pid>` here and `vfi<pid>` inside; removed on drop.
struct Netns {
    name: String,
    outer: String,
    listeners: Vec<Child>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for l in &mut self.listeners {
            let _ = l.kill();
            let _ = l.wait();
        }
        let _ = ip(&["link", "del", &self.outer]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    IP.command()?.args(args).run_checked()?;
    Ok(())
}

fn in_ns(ns: &str, args: &[&str]) {
    ip(&[&["netns", "exec", ns][..], args].concat()).unwrap_or_else(|e| panic!("{e:#}"));
}

const V4_IN: &str = "10.231.0.2";
const V6_IN: &str = "fd00:ec5:f1::2";

fn netns() -> Netns {
    let pid = std::process::id() % 100000;
    let n = Netns {
        name: format!("ecsfw{pid}"),
        outer: format!("vfo{pid}"),
        listeners: Vec::new(),
    };
    let inner = format!("vfi{pid}");
    let _ = ip(&["netns", "del", &n.name]);
    ip(&["netns", "add", &n.name]).unwrap();
    ip(&["link", "add", &n.outer, "type", "veth", "peer", "name", &inner]).unwrap();
    ip(&["link", "set", &inner, "netns", &n.name]).unwrap();
    ip(&["addr", "add", "10.231.0.1/24", "dev", &n.outer]).unwrap();
    ip(&["addr", "add", "fd00:ec5:f1::1/64", "dev", &n.outer, "nodad"]).unwrap();
    ip(&["link", "set", &n.outer, "up"]).unwrap();
    in_ns(
        &n.name,
        &["ip", "addr", "add", &format!("{V4_IN}/24"), "dev", &inner],
    );
    in_ns(
        &n.name,
        &[
            "ip",
            "addr",
            "add",
            &format!("{V6_IN}/64"),
            "dev",
            &inner,
            "nodad",
        ],
    );
    in_ns(&n.name, &["ip", "link", "set", &inner, "up"]);
    in_ns(&n.name, &["ip", "link", "set", "lo", "up"]);
    n
}

/// A TCP listener on `port` (all addresses, IPv4 and IPv6) inside the namespace.
fn listen(ns: &mut Netns, port: u16) {
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET6)\ns.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
         s.bind(('::', {port}))\ns.listen(8)\nwhile True:\n    c, _ = s.accept()\n    c.close()\n"
    );
    let child = Command::new(IP.path().unwrap())
        .args(["netns", "exec", &ns.name, "python3", "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    ns.listeners.push(child);
}

/// Connects within 3 s (a dropped SYN times out; only the deadline says "dropped").
fn connects(addr: &str, port: u16) -> bool {
    let a: SocketAddr = if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
    .parse()
    .unwrap();
    TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok()
}

fn wait_listening(addr: &str, port: u16) {
    // Before the firewall: the listener answers once python has bound it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !connects(addr, port) {
        assert!(Instant::now() < deadline, "listener on {port} never came up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pings(addr: &str) -> bool {
    PING.command()
        .unwrap()
        .args(["-c", "1", "-W", "3", addr])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn firewall_opens_exactly_its_ports() {
    assert!(
        e2e_tests::is_root(),
        "nft and network namespaces need root: run as root (CI does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env.yml");
    let text = agent_env("  firewall:\n    allow: [tcp/8443, udp/51820]\n");
    std::fs::write(&env, text).unwrap();
    let ctx = dir.path().join("context.yml");
    std::fs::write(
        &ctx,
        format!(
            "active-env: {d}/none.yml\napp-env: {e}\nrun-dir: {d}/run\n",
            d = dir.path().display(),
            e = env.display()
        ),
    )
    .unwrap();
    let agent = env!("CARGO_BIN_EXE_ecs-agent");

    // --print: our table only, the extra ports in it, and nft accepts it (check mode).
    let printed = Command::new(agent)
        .arg("--context")
        .arg(&ctx)
        .args(["firewall", "--print"])
        .run_stdout()
        .unwrap();
    assert!(
        printed.contains("tcp dport { 22, 25, 80, 443, 465, 8443 } accept"),
        "{printed}"
    );
    assert!(printed.contains("udp dport { 51820 } accept"), "{printed}");
    assert!(!printed.contains("flush ruleset"), "{printed}");
    let file = dir.path().join("rules.nft");
    std::fs::write(&file, &printed).unwrap();
    NFT.command()
        .unwrap_or_else(|e| panic!("{e}"))
        .args(["-c", "-f"])
        .arg(&file)
        .run_checked()
        .unwrap_or_else(|e| panic!("{e:#}"));

    // For real, inside the namespace.
    let mut ns = netns();
    for port in [22, 8443, 8081] {
        listen(&mut ns, port);
    }
    for port in [22, 8443, 8081] {
        wait_listening(V4_IN, port);
    }
    // An unrelated table of "docker" in the namespace survives our loads.
    in_ns(&ns.name, &["nft", "add", "table", "ip", "docker_standin"]);
    for _ in 0..2 {
        let out = Command::new(IP.path().unwrap())
            .args(["netns", "exec", &ns.name, agent, "--context"])
            .arg(&ctx)
            .arg("firewall")
            .run_stdout()
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(out.contains("firewall: open tcp/22"), "{out}");
    }
    let tables = Command::new(IP.path().unwrap())
        .args(["netns", "exec", &ns.name, "nft", "list", "tables"])
        .run_stdout()
        .unwrap();
    assert!(
        tables.contains("table inet ecs_filter") && tables.contains("table ip docker_standin"),
        "{tables}"
    );
    for addr in [V4_IN, V6_IN] {
        assert!(connects(addr, 22), "ssh on {addr} is closed");
        assert!(connects(addr, 8443), "env.yml's tcp/8443 on {addr} is closed");
        assert!(!connects(addr, 8081), "tcp/8081 on {addr} is open");
        assert!(pings(addr), "{addr} does not answer ping");
    }
}

/// A valid env.yml with `extra` under `appliance:`.
fn agent_env(extra: &str) -> String {
    format!(
        "#cloud-config\nappliance:\n  domain: fw.example.org\n  dkim:\n    key: |\n      \
         -----BEGIN PRIVATE KEY-----\n      Zml4dHVyZQ==\n      -----END PRIVATE KEY-----\n  \
         backup:\n    url: file:///nonexistent\n    encrypt: |\n      -----BEGIN PGP PRIVATE KEY BLOCK-----\n\n      \
         Zml4dHVyZQ==\n      -----END PGP PRIVATE KEY BLOCK-----\n  database:\n    password: fixture-db-password-7f3a9c\n\
         {extra}ecs:\n  settings: \"# fixture\"\n  vault_encrypt: |\n    -----BEGIN PGP PRIVATE KEY BLOCK-----\n\n    \
         Zml4dHVyZQ==\n    -----END PGP PRIVATE KEY BLOCK-----\n  vault_sign: |\n    -----BEGIN PGP PRIVATE KEY BLOCK-----\n\n    \
         Zml4dHVyZQ==\n    -----END PGP PRIVATE KEY BLOCK-----\n"
    )
}
