//! `appliance.update.oncalendar` and `appliance.backup.schedule` checked by systemd's own parser (`systemd-analyze calendar`):
//! the timer that uses it is written at boot, where a bad expression would only fail later.

use host_util::Tool;

use crate::model::{DEFAULT_BACKUP_SCHEDULE, DEFAULT_ONCALENDAR};

pub const SYSTEMD_ANALYZE: Tool = Tool::new("systemd-analyze", "systemd");

/// Ok when systemd parses `value` and it elapses at some time. The built-in defaults are known
/// good and needs no systemd-analyze; any other value does, and its absence is an error.
pub(crate) fn oncalendar(value: &str) -> Result<(), String> {
    let expected = "expected a systemd OnCalendar= expression like `Sun *-*-* 06:30:00`";
    if value == DEFAULT_ONCALENDAR || value == DEFAULT_BACKUP_SCHEDULE {
        return Ok(());
    }
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err(format!("{expected} on one line"));
    }
    let mut cmd = SYSTEMD_ANALYZE
        .command()
        .map_err(|e| format!("cannot be checked: {e}"))?;
    let out = cmd
        .args(["calendar", "--"])
        .arg(value)
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .output()
        .map_err(|e| format!("cannot be checked: running systemd-analyze: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{value}` is not a calendar expression systemd can parse (systemd-analyze calendar refused it); {expected}"
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.lines().any(|l| l.trim() == "Next elapse: never") {
        return Err(format!(
            "`{value}` never elapses (systemd-analyze calendar: next elapse never); {expected}"
        ));
    }
    Ok(())
}
