//! The host firewall: an nftables table of our own, `inet ecs_filter` (IPv4 and IPv6).
//!
//! Never `flush ruleset`: docker keeps its own tables (NAT for published ports, its isolation
//! chains), and they must survive us. The table is deleted and recreated in one `nft -f`
//! transaction, so there is no moment without rules and a failed load changes nothing.
//!
//! input: dropped unless it is loopback, part of a known connection, ICMP/ICMPv6 (IPv6 does
//! not work without neighbour discovery, and path MTU discovery needs "too big"), a DHCP or
//! DHCPv6 reply to our client, from a container (the mail relay listens for them on the host),
//! or to ssh, http, https, smtp, submissions and `appliance.firewall.allow`.
//!
//! forward: a new connection from outside to a container's address is dropped (moby issue
//! 45610: docker before 28 lets a neighbour on the link route straight to a container, around
//! its published ports). Published ports arrive DNAT'ed (`ct status dnat`) and pass; replies and
//! containers' own traffic pass; docker's filter chains (priority 0, after ours) still apply.

use std::io::Write as _;
use std::process::Stdio;

use anyhow::{Context as _, bail};
use appliance_env::FirewallPort;

use crate::context::Context;
use crate::tools::NFT;

pub const TABLE: &str = "inet ecs_filter";

/// The interfaces docker makes for its networks: the default bridge and compose's `br-<id>`.
const DOCKER_IFACES: &[&str] = &["docker0", "br-*"];

/// ICMPv6 that IPv6 needs (RFC 4890): errors, echo, neighbour and router discovery, MLD.
const ICMPV6: &str = "destination-unreachable, packet-too-big, time-exceeded, parameter-problem, \
echo-request, echo-reply, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, \
mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report";

/// The ports always open: ssh, the web frontend and, when the appliance relays mail, smtp and
/// submissions.
pub fn base_ports(ctx: &Context) -> Vec<FirewallPort> {
    let mut ports = vec![22, ctx.http_port, ctx.https_port];
    if ctx.mail {
        ports.extend([ctx.smtp_port, ctx.smtps_port]);
    }
    ports
        .into_iter()
        .map(|port| FirewallPort { proto: "tcp", port })
        .collect()
}

fn port_set(ports: &[FirewallPort], proto: &str) -> Option<String> {
    let mut list: Vec<u16> = ports
        .iter()
        .filter(|p| p.proto == proto)
        .map(|p| p.port)
        .collect();
    list.sort_unstable();
    list.dedup();
    (!list.is_empty()).then(|| list.iter().map(u16::to_string).collect::<Vec<_>>().join(", "))
}

/// The `nft -f` script that replaces our table: `extra` are env.yml's `appliance.firewall.allow`.
pub fn ruleset(ctx: &Context, extra: &[FirewallPort]) -> String {
    let mut ports = base_ports(ctx);
    ports.extend_from_slice(extra);
    let mut open = String::new();
    for proto in ["tcp", "udp"] {
        if let Some(set) = port_set(&ports, proto) {
            open.push_str(&format!("    {proto} dport {{ {set} }} accept\n"));
        }
    }
    let from_docker: String = DOCKER_IFACES
        .iter()
        .map(|i| format!("    iifname \"{i}\" accept\n"))
        .collect();
    let to_docker: String = DOCKER_IFACES
        .iter()
        .map(|i| format!("    oifname \"{i}\" drop\n"))
        .collect();
    format!(
        "# Written by ecs-agent (`ecs-agent firewall --print`): replaces table {TABLE} only.\n\
         add table {TABLE}\ndelete table {TABLE}\n\
         table {TABLE} {{\n  chain input {{\n    type filter hook input priority filter; policy drop;\n    \
         iif \"lo\" accept\n    ct state established,related accept\n    ct state invalid drop\n    \
         meta l4proto icmp accept\n    icmpv6 type {{ {ICMPV6} }} accept\n    \
         udp sport 67 udp dport 68 accept\n    ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept\n\
         {from_docker}{open}  }}\n\
         \x20 # Before docker's filter (priority 0): only new connections to containers that are not\n  \
         # DNAT'ed published ports are dropped; what is accepted here still meets docker's rules.\n  \
         chain forward {{\n    type filter hook forward priority filter - 10; policy accept;\n    \
         ct state established,related accept\n    ct status dnat accept\n{from_docker}{to_docker}  }}\n}}\n"
    )
}

/// The extra ports of the env.yml the agent would use now: the active one (written by the last
/// start), else the operator's /app/env.yml; none when neither is readable (the boot unit runs
/// before the seed is read; `start` applies them once it is).
fn env_ports(ctx: &Context) -> Vec<FirewallPort> {
    for path in [&ctx.active_env, &ctx.app_env] {
        if !path.is_file() {
            continue;
        }
        match crate::envfile::load(path) {
            Ok(env) => return env.settings.firewall_allow,
            Err(e) => {
                tracing::warn!("firewall: {e}; only the appliance's own ports are opened");
                return Vec::new();
            }
        }
    }
    Vec::new()
}

/// Loads `script` with `nft -f -` (one transaction).
pub fn load(script: &str) -> anyhow::Result<()> {
    let mut child = NFT
        .command()?
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    child
        .stdin
        .take()
        .context("nft's stdin")?
        .write_all(script.as_bytes())
        .context("writing the ruleset to nft")?;
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft -f refused the ruleset of table {TABLE}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Replaces our table with the rules for `extra` (the start step, env.yml known).
pub fn apply(ctx: &Context, extra: &[FirewallPort]) -> anyhow::Result<String> {
    load(&ruleset(ctx, extra))?;
    let ports = base_ports(ctx).into_iter().chain(extra.iter().copied());
    let list: Vec<String> = ports.map(|p| format!("{}/{}", p.proto, p.port)).collect();
    Ok(format!("firewall: open {}", list.join(" ")))
}

/// `ecs-agent firewall [--print]`.
pub fn command(ctx: &Context, print: bool) -> anyhow::Result<()> {
    let extra = env_ports(ctx);
    if print {
        print!("{}", ruleset(ctx, &extra));
        return Ok(());
    }
    println!("ecs-agent: {}", apply(ctx, &extra)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_replaces_only_our_table() {
        let ctx = Context::default();
        let extra = [
            FirewallPort {
                proto: "udp",
                port: 51820,
            },
            FirewallPort {
                proto: "tcp",
                port: 443,
            },
        ];
        let r = ruleset(&ctx, &extra);
        assert!(!r.contains("flush ruleset"), "{r}");
        assert!(
            r.contains("add table inet ecs_filter\ndelete table inet ecs_filter\n"),
            "{r}"
        );
        assert!(r.contains("tcp dport { 22, 25, 80, 443, 465 } accept"), "{r}");
        assert!(r.contains("udp dport { 51820 } accept"), "{r}");
        assert!(r.contains("policy drop"), "{r}");
        let no_mail = Context {
            mail: false,
            ..Context::default()
        };
        assert!(ruleset(&no_mail, &[]).contains("tcp dport { 22, 80, 443 } accept"));
        assert!(!ruleset(&no_mail, &[]).contains("udp dport {"));
    }
}
