//! Human-friendly units in configuration files: durations (`10s`, `250ms`) and byte sizes
//! (`16KiB`, `10MiB`, or a plain integer). Each is a newtype so that a bad value is reported by
//! serde with the key path that holds it.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A duration written the way humans write it: `500ms`, `10s`, `1m 30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(Dur)
            .map_err(|e| {
                de::Error::custom(format!(
                    "invalid duration {text:?} ({e}); write e.g. \"10s\" or \"250ms\""
                ))
            })
    }
}

/// A byte count: a plain integer, or a number with a `B`, `KiB`, `MiB` or `GiB` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte size such as 16384, \"16KiB\" or \"10MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
                u64::try_from(v)
                    .map(Bytes)
                    .map_err(|_| E::custom(format!("invalid byte size {v}: must not be negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                parse_bytes(v).map(Bytes).ok_or_else(|| {
                    E::custom(format!(
                        "invalid byte size {v:?}; write e.g. 16384, \"16KiB\" or \"10MiB\""
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_bytes("16384"), Some(16384));
        assert_eq!(parse_bytes("16KiB"), Some(16 * 1024));
        assert_eq!(parse_bytes("10 MiB"), Some(10 * 1024 * 1024));
        assert_eq!(parse_bytes("1GiB"), Some(1 << 30));
    }

    #[test]
    fn byte_sizes_refuse_unknown_units_and_overflow() {
        assert_eq!(parse_bytes("10MB"), None);
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("99999999999999999999GiB"), None);
        assert_eq!(parse_bytes("18446744073709551615GiB"), None);
    }
}
