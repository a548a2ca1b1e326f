//! Seconds since the epoch as the calendar dates ISO 9660 records, always in UTC.
//!
//! The writer takes a caller-supplied timestamp (SOURCE_DATE_EPOCH) instead of the clock, so the
//! conversion lives here, without a date crate: it is one well-known algorithm.

use crate::SeedError;

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utc {
    pub year: u32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// The latest year a 7-byte directory-record date holds (years since 1900 in one byte).
const MAX_YEAR: u32 = 1900 + 255;

impl Utc {
    /// Converts `timestamp`, refusing years a directory record cannot hold.
    pub fn from_timestamp(timestamp: u64) -> Result<Utc, SeedError> {
        let days = timestamp / 86_400;
        let secs = timestamp % 86_400;
        let (year, month, day) = civil_from_days(days);
        if year > MAX_YEAR {
            return Err(SeedError::Timestamp { timestamp });
        }
        Ok(Utc {
            year,
            month,
            day,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
        })
    }

    /// ECMA-119 9.1.5: years since 1900, month, day, hour, minute, second, UTC offset 0.
    pub fn record_date(&self) -> [u8; 7] {
        [
            (self.year - 1900) as u8,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            0,
        ]
    }

    /// ECMA-119 8.4.26.1: "YYYYMMDDHHMMSScc" in digits, then the UTC offset byte 0.
    pub fn volume_date(&self) -> [u8; 17] {
        let text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(text.as_bytes());
        out
    }
}

/// "Not specified" in a volume descriptor date field: sixteen '0' digits and offset 0.
pub(crate) const UNSET_VOLUME_DATE: [u8; 17] = *b"0000000000000000\0";

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar, after
/// Howard Hinnant's `civil_from_days` (eras of 400 years starting on March 1st).
fn civil_from_days(days: u64) -> (u32, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (u32::try_from(year).unwrap_or(u32::MAX), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts: u64) -> Utc {
        Utc::from_timestamp(ts).unwrap()
    }

    #[test]
    fn known_dates_convert() {
        let epoch = at(0);
        assert_eq!((epoch.year, epoch.month, epoch.day, epoch.hour), (1970, 1, 1, 0));
        // `date -u -d @1700000000` = 2023-11-14 22:13:20
        let t = at(1_700_000_000);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2023, 11, 14, 22, 13, 20)
        );
        // A leap day: 2024-02-29 12:00:00
        let t = at(1_709_208_000);
        assert_eq!((t.year, t.month, t.day, t.hour), (2024, 2, 29, 12));
        assert_eq!(t.record_date(), [124, 2, 29, 12, 0, 0, 0]);
        assert_eq!(&t.volume_date(), b"2024022912000000\0");
    }

    #[test]
    fn years_beyond_a_record_date_are_refused() {
        // 2156-01-01 00:00:00 UTC
        let err = Utc::from_timestamp(5_869_584_000).unwrap_err();
        assert!(err.to_string().contains("5869584000"), "{err}");
        assert_eq!(at(5_869_583_999).year, 2155);
        assert!(Utc::from_timestamp(u64::MAX).is_err());
    }
}
