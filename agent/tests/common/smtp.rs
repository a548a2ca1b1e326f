//! An SMTP sink standing in for the appliance's relay: takes every mail on 0.0.0.0 (the app's
//! containers reach it through host.docker.internal) and keeps it for the test.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One mail as it arrived: envelope and the DATA (dot-unstuffed, CRLF line ends).
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

pub struct Sink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl Sink {
    pub fn start() -> Sink {
        let l = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let _ = session(conn, &kept);
                });
            }
        });
        Sink { port, mails }
    }

    /// The mails so far. A mail is kept before its DATA is acknowledged, so one the client
    /// saw accepted is here.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

fn session(s: TcpStream, mails: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut mail = Mail {
        from: String::new(),
        to: Vec::new(),
        data: String::new(),
    };
    w.write_all(b"220 sink ESMTP\r\n")?;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let verb = upper.split([' ', ':']).next().unwrap_or_default();
        let arg = || {
            line.trim_end()
                .split_once(':')
                .map(|x| x.1.trim().to_string())
                .unwrap_or_default()
        };
        let reply: &[u8] = match verb {
            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
            "HELO" | "NOOP" => b"250 ok\r\n",
            "RSET" => {
                mail.from.clear();
                mail.to.clear();
                b"250 ok\r\n"
            }
            "MAIL" => {
                mail.from = arg();
                b"250 ok\r\n"
            }
            "RCPT" => {
                mail.to.push(arg());
                b"250 ok\r\n"
            }
            "DATA" => {
                w.write_all(b"354 go on\r\n")?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l)? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                mail.data = data;
                mails.lock().unwrap().push(mail.clone());
                b"250 queued\r\n"
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => b"502 not here\r\n",
        };
        w.write_all(reply)?;
    }
}

/// The decoded body of the MIME part whose headers name `filename` (base64 transfer encoding).
pub fn attachment(data: &str, filename: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let at = data.find(&format!("filename=\"{filename}\""))?;
    let rest = &data[at..];
    let body_start = rest.find("\r\n\r\n").map(|i| i + 4)?;
    let body: String = rest[body_start..]
        .lines()
        .take_while(|l| !l.starts_with("--") && !l.trim().is_empty())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()
}
