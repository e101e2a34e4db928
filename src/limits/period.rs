//! Calendar periods in UTC: days, and months that start on the tenant's billing day.

use crate::tenants::plans::Period;

const DAY: u64 = 86_400;

/// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn next_month(year: i64, month: u32) -> (i64, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

/// The period containing `now` (Unix seconds): its key, as stored, and when it ends.
pub fn current(period: Period, billing_day: u8, now: u64) -> (String, u64) {
    let days = i64::try_from(now / DAY).unwrap_or(0);
    let (year, month, day) = civil_from_days(days);
    match period {
        Period::Day => {
            let end = (now / DAY + 1) * DAY;
            (format!("{year:04}-{month:02}-{day:02}"), end)
        }
        Period::Month => {
            let anchor = u32::from(billing_day.clamp(1, 28));
            let (start_year, start_month) = if day >= anchor {
                (year, month)
            } else if month == 1 {
                (year - 1, 12)
            } else {
                (year, month - 1)
            };
            let (end_year, end_month) = next_month(start_year, start_month);
            let end_days = days_from_civil(end_year, end_month, anchor);
            let end = u64::try_from(end_days).unwrap_or(0) * DAY;
            let key = if anchor == 1 {
                format!("{start_year:04}-{start_month:02}")
            } else {
                format!("{start_year:04}-{start_month:02}-{anchor:02}")
            };
            (key, end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: i64, month: u32, day: u32, hour: u64) -> u64 {
        u64::try_from(days_from_civil(year, month, day)).unwrap() * DAY + hour * 3600
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1000, 0, 59, 365, 11_016, 20_000, 20_779] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn days_roll_over_at_midnight_utc() {
        let (key, end) = current(Period::Day, 1, at(2026, 11, 22, 23));
        assert_eq!(key, "2026-11-22");
        assert_eq!(end, at(2026, 11, 23, 0));
    }

    #[test]
    fn months_roll_over_on_the_first_and_across_years() {
        assert_eq!(
            current(Period::Month, 1, at(2026, 11, 30, 23)),
            ("2026-11".into(), at(2026, 12, 1, 0))
        );
        assert_eq!(
            current(Period::Month, 1, at(2026, 12, 1, 0)),
            ("2026-12".into(), at(2027, 1, 1, 0))
        );
        assert_eq!(
            current(Period::Month, 1, at(2026, 12, 31, 12)).1,
            at(2027, 1, 1, 0)
        );
    }

    #[test]
    fn months_anchor_on_the_billing_day() {
        assert_eq!(
            current(Period::Month, 15, at(2026, 11, 14, 12)),
            ("2026-10-15".into(), at(2026, 11, 15, 0))
        );
        assert_eq!(
            current(Period::Month, 15, at(2026, 11, 15, 0)),
            ("2026-11-15".into(), at(2026, 12, 15, 0))
        );
        assert_eq!(
            current(Period::Month, 15, at(2027, 1, 3, 0)),
            ("2026-12-15".into(), at(2027, 1, 15, 0))
        );
    }
}
