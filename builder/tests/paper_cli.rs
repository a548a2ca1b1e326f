//! `ecs-build config print|unprint`, black-box: print an env.yml full of real key material,
//! rasterise the PDF at 150 dpi with poppler's pdftoppm (as a scanner would), restore it from
//! the pages in shuffled order, and check the failures an operator can run into.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use host_util::{CommandExt, Tool};

const PDFTOPPM: Tool = Tool::new("pdftoppm", "poppler-utils");
const PDFTOTEXT: Tool = Tool::new("pdftotext", "poppler-utils");
const OPENSSL: Tool = Tool::new("openssl", "openssl");
const GPG: Tool = Tool::new("gpg", "gnupg");
const GPGCONF: Tool = Tool::new("gpgconf", "gnupg");
const SSH_KEYGEN: Tool = Tool::new("ssh-keygen", "openssh-client");

const EPOCH: &str = "1700000000";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ecs_build(args: &[&str], dir: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ecs-build"))
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn tool(t: Tool) -> Command {
    t.command().unwrap_or_else(|e| panic!("{e}"))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Indents a PEM block for a YAML literal.
fn block(pem: &str) -> String {
    pem.lines().map(|l| format!("      {l}\n")).collect()
}

/// An env.yml shaped like the original appliance's, with real keys from the real tools:
/// a TLS key and certificate, a DKIM key, three OpenPGP secret keys, SSH keys.
fn key_laden_env(dir: &Path) -> Vec<u8> {
    let run = |cmd: &mut Command| String::from_utf8(cmd.run_checked().unwrap().stdout).unwrap();
    let tls_key = dir.join("tls.key");
    run(tool(OPENSSL)
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:3072",
            "-out",
        ])
        .arg(&tls_key));
    let cert = run(tool(OPENSSL)
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "3650",
            "-subj",
            "/CN=ecs.example.org",
            "-addext",
            "subjectAltName=DNS:ecs.example.org",
            "-key",
        ])
        .arg(&tls_key));
    let dkim = run(tool(OPENSSL).args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]));
    let home = dir.join("gnupg");
    fs::create_dir(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let gpg = || {
        let mut c = tool(GPG);
        c.arg("--homedir")
            .arg(&home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""]);
        c
    };
    let mut gpg_keys = Vec::new();
    for name in ["ecs_backup", "ecs_mediaserver", "ecs_authority"] {
        run(gpg().args(["--quick-gen-key", name, "rsa3072", "default", "never"]));
        gpg_keys.push(run(gpg().args(["--armor", "--export-secret-keys", name])));
    }
    let _ = tool(GPGCONF)
        .arg("--homedir")
        .arg(&home)
        .args(["--kill", "gpg-agent"])
        .run_checked();
    let mut ssh = Vec::new();
    for (name, kind) in [("ssh_rsa", "rsa"), ("ssh_ed25519", "ed25519")] {
        let key = dir.join(name);
        run(tool(SSH_KEYGEN)
            .args(["-q", "-t", kind, "-N", "", "-C", "operator@example.org", "-f"])
            .arg(&key));
        ssh.push(
            fs::read_to_string(key.with_extension("pub"))
                .unwrap()
                .trim()
                .to_string(),
        );
    }
    let secret = |n: u8| format!("{:064x}", u128::from(n) * 0x9e3779b97f4a7c15_u128);
    format!(
        "#cloud-config\nssh_authorized_keys:\n  - {}\n  - {}\ndisable_root: false\n\nappliance:\n  domain: ecs.example.org\n  \
         ssl:\n    letsencrypt:\n      enabled: true\n    client_certs_mandatory: false\n    key: |\n{}    cert: |\n{}  \
         dkim:\n    key: |\n{}  backup:\n    url: file:///volatile/ecs-backup-test/\n    encrypt: |\n{}\necs:\n  \
         vault_encrypt: |\n{}  vault_sign: |\n{}  settings: |\n      DOMAIN = 'ecs.example.org'\n      \
         SECRET_KEY = '{}'\n      REGISTRATION_SECRET = '{}'\n      PASSWORD_RESET_SECRET = '{}'\n",
        ssh[0],
        ssh[1],
        block(&fs::read_to_string(&tls_key).unwrap()),
        block(&cert),
        block(&dkim),
        block(&gpg_keys[0]),
        block(&gpg_keys[1]),
        block(&gpg_keys[2]),
        secret(1),
        secret(2),
        secret(3),
    )
    .into_bytes()
}

/// The PDF's pages as 150 dpi PNGs, in page order.
fn rasterise(pdf: &Path, dir: &Path) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    tool(PDFTOPPM)
        .args(["-r", "150", "-png"])
        .arg(pdf)
        .arg(dir.join("page"))
        .run_checked()
        .unwrap();
    let mut pages: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    pages.sort();
    pages
}

/// Prints env.yml, restores it from shuffled 150 dpi pages, and checks what the PDF says.
fn round_trip(dir: &Path, env: &[u8], domain: &str) {
    fs::write(dir.join("env.yml"), env).unwrap();
    // --force: the folder may hold config new's env.pdf, which this one must equal.
    let r = ecs_build(&["config", "print", "env.yml", "-o", "env.pdf", "--force"], dir);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mode(&dir.join("env.pdf")), 0o600);

    let text = tool(PDFTOTEXT)
        .arg("-layout")
        .arg(dir.join("env.pdf"))
        .arg("-")
        .run_stdout()
        .unwrap();
    let sha = hex_sha256(env);
    assert!(text.contains(&format!("env.yml of {domain}")), "{text}");
    assert!(text.contains("printed 2023-11-14 22:13 UTC"), "{text}");
    assert!(text.contains(&format!("sha256 {sha}")), "{text}");
    assert!(
        text.contains("ecs-build config unprint page*.png -o env.yml"),
        "{text}"
    );
    assert!(text.contains("-----BEGIN PGP PRIVATE KEY BLOCK-----"), "{text}");

    let mut pages = rasterise(&dir.join("env.pdf"), &dir.join("scans"));
    let count = text.lines().filter(|l| l.trim().starts_with("1/")).count();
    assert_eq!(count, 1, "exactly one code labelled 1/m: {text}");
    // Any order: reversed, then the first and last swapped.
    pages.reverse();
    let n = pages.len();
    pages.swap(0, n - 1);
    let mut args = vec!["config".to_string(), "unprint".into()];
    args.extend(pages.iter().map(|p| p.display().to_string()));
    args.extend(["-o".into(), "restored.yml".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = ecs_build(&args, dir);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&sha), "{}", r.stdout);
    assert_eq!(
        fs::read(dir.join("restored.yml")).unwrap(),
        env,
        "restored env.yml differs"
    );
    assert_eq!(mode(&dir.join("restored.yml")), 0o600);
}

fn hex_sha256(data: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    fs::write(&path, data).unwrap();
    let out = tool(OPENSSL)
        .args(["dgst", "-sha256", "-r"])
        .arg(&path)
        .run_stdout()
        .unwrap();
    out.split_whitespace().next().unwrap().to_string()
}

#[test]
fn key_laden_env_survives_print_scan_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let env = key_laden_env(dir.path());
    assert!(
        (15_000..=25_000).contains(&env.len()),
        "fixture is {} bytes",
        env.len()
    );
    round_trip(dir.path(), &env, "ecs.example.org");

    // A missing page: its codes are named. Page 1 is text; drop the second QR page.
    let pages = rasterise(&dir.path().join("env.pdf"), &dir.path().join("scans"));
    let text = tool(PDFTOTEXT)
        .arg("-layout")
        .arg(dir.path().join("env.pdf"))
        .arg("-")
        .run_stdout()
        .unwrap();
    let first_qr = pages
        .iter()
        .position(|p| {
            let page = p
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .rsplit('-')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap();
            text.split('\u{c}')
                .nth(page - 1)
                .unwrap()
                .lines()
                .any(|l| l.trim().starts_with("1/"))
        })
        .expect("a page with code 1/m");
    let mut args = vec!["config".to_string(), "unprint".into()];
    for (i, p) in pages.iter().enumerate() {
        if i != first_qr + 1 {
            args.push(p.display().to_string());
        }
    }
    args.extend(["-o".into(), "partial.yml".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = ecs_build(&args, dir.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    let m = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("1/"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    let missing: Vec<String> = (5..=8).map(|i| format!("{i}/{m}")).collect();
    assert!(
        r.stderr.contains(&format!(
            "missing QR codes {} of document {}",
            missing.join(", "),
            &hex_sha256(&env)[..16]
        )),
        "{}",
        r.stderr
    );
    assert!(
        !dir.path().join("partial.yml").exists(),
        "nothing written on failure"
    );
}

#[test]
fn same_env_and_epoch_give_the_same_pdf() {
    let dir = tempfile::tempdir().unwrap();
    let env = b"#cloud-config\nappliance:\n  domain: same.example.org\n  caf\xc3\xa9: \"\\t\"\n".repeat(20);
    fs::write(dir.path().join("env.yml"), &env).unwrap();
    let mut pdfs = Vec::new();
    for name in ["a.pdf", "b.pdf"] {
        let r = ecs_build(&["config", "print", "env.yml", "-o", name], dir.path());
        assert_eq!(r.code, 0, "{}", r.stderr);
        pdfs.push(fs::read(dir.path().join(name)).unwrap());
    }
    assert_eq!(pdfs[0], pdfs[1]);
    let text = String::from_utf8_lossy(&pdfs[0]);
    assert!(
        text.contains("/CreationDate (D:20231114221320"),
        "the date is SOURCE_DATE_EPOCH's"
    );
    // Non-ASCII is shown escaped in the text; the codes carry the bytes.
    let shown = tool(PDFTOTEXT)
        .arg("-layout")
        .arg(dir.path().join("a.pdf"))
        .arg("-")
        .run_stdout()
        .unwrap();
    assert!(shown.contains("caf<U+00E9>"), "{shown}");
}

#[test]
fn bad_input_exits_2_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = ecs_build(&["config", "print", "nope.yml", "-o", "env.pdf"], dir.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("nope.yml: reading: "), "{}", r.stderr);
    assert!(!dir.path().join("env.pdf").exists());

    fs::write(dir.path().join("scan.png"), b"not a png").unwrap();
    let r = ecs_build(&["config", "unprint", "scan.png", "-o", "env.yml"], dir.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("scan.png: not a readable PNG image"),
        "{}",
        r.stderr
    );

    let r = ecs_build(&["config", "unprint", "missing.png", "-o", "env.yml"], dir.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("missing.png: reading: "), "{}", r.stderr);

    fs::write(dir.path().join("env.yml"), b"keep me").unwrap();
    let r = ecs_build(&["config", "unprint", "scan.png", "-o", "env.yml"], dir.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("error: env.yml exists; pass --force to replace it"),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read(dir.path().join("env.yml")).unwrap(), b"keep me");
}

/// The real thing: an env.yml from `config new`, and the env.pdf it wrote next to it.
#[test]
fn generated_env_survives_print_scan_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let r = ecs_build(
        &["config", "new", "--domain", "x.example.org", "--out", "gen"],
        dir.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let gen_dir = dir.path().join("gen");
    let env = fs::read(gen_dir.join("env.yml")).unwrap();
    assert_eq!(mode(&gen_dir.join("env.pdf")), 0o600);
    let from_new = fs::read(gen_dir.join("env.pdf")).unwrap();
    round_trip(&gen_dir, &env, "x.example.org");
    assert_eq!(
        fs::read(gen_dir.join("env.pdf")).unwrap(),
        from_new,
        "config new and config print agree"
    );
}
