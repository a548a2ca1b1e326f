//! Unix time to a UTC calendar date, for the printed date and the PDF's CreationDate
//! (no clock is read here: the caller passes SOURCE_DATE_EPOCH or now).

/// (year, month, day, hour, minute, second) in UTC.
pub fn civil(timestamp: u64) -> (i64, u8, u8, u8, u8, u8) {
    let days = (timestamp / 86_400) as i64;
    let secs = timestamp % 86_400;
    // Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (secs / 3600) as u8,
        (secs / 60 % 60) as u8,
        (secs % 60) as u8,
    )
}

/// "YYYY-MM-DD HH:MM UTC".
pub fn display(timestamp: u64) -> String {
    let (y, mo, d, h, mi, _) = civil(timestamp);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(civil(4_107_542_399), (2100, 2, 28, 23, 59, 59));
        assert_eq!(display(1_709_251_199), "2024-02-29 23:59 UTC");
    }
}
