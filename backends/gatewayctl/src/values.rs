//! Argument values checked before the database is opened: decimals, client
//! ids, scopes, the actor, expiry dates.

use super::*;

pub(crate) fn decimal(field: &str, raw: &str) -> Result<Decimal, Failure> {
    store::parse_decimal(field, raw).map_err(|e| Failure::usage(e.to_string()))
}

pub(crate) fn non_negative(field: &str, raw: &str) -> Result<Decimal, Failure> {
    let d = decimal(field, raw)?;
    if d < Decimal::ZERO {
        return Err(Failure::usage(format!("{field}: must not be negative")));
    }
    Ok(d)
}

pub(crate) fn client_id(raw: &str) -> Result<ClientId, Failure> {
    ClientId::parse(raw).map_err(|e| Failure::usage(format!("client-id: {}", e.issue)))
}

pub(crate) fn scope(raw: &str) -> Result<String, Failure> {
    let ok = !raw.is_empty()
        && raw.len() <= 32
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_:.-".contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Failure::usage(format!(
            "scope: {raw:?} must be lower-case letters, digits, '_', ':', '.' or '-' (e.g. admin)"
        )))
    }
}

pub(crate) fn scopes(raw: &[String]) -> Result<Vec<String>, Failure> {
    let mut out: Vec<String> = Vec::new();
    for s in raw {
        let s = scope(s)?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// An actor name: 1 to 64 characters, no control characters.
pub(crate) fn valid_actor(raw: &str) -> Option<String> {
    let a = raw.trim();
    (!a.is_empty() && a.chars().count() <= 64 && !a.chars().any(char::is_control))
        .then(|| a.to_owned())
}

/// `--actor`, else `USER`, else `LOGNAME`, else `unknown`.
pub(crate) fn actor(flag: Option<&str>) -> Result<String, Failure> {
    if let Some(raw) = flag {
        return valid_actor(raw).ok_or_else(|| {
            Failure::usage(format!(
                "actor: {raw:?} must be 1 to 64 characters without control characters"
            ))
        });
    }
    Ok(["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().as_deref().and_then(valid_actor))
        .unwrap_or_else(|| store::UNKNOWN_ACTOR.to_owned()))
}

/// Seconds since the epoch of an RFC 3339 time: `YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction (dropped), then `Z` or a `±HH:MM` offset.
pub(crate) fn parse_rfc3339_any_offset(raw: &str) -> Option<i64> {
    let s = raw.trim();
    if s.len() < 20 || !s.is_ascii() {
        return None;
    }
    let (base, mut zone) = s.split_at(19);
    let base = base.to_ascii_uppercase();
    let secs = store::time::parse_rfc3339(&format!("{base}Z"))?;
    // Rejects impossible dates (2026-02-30) and leap seconds.
    if store::time::rfc3339(secs)[..19] != base {
        return None;
    }
    if let Some(frac) = zone.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        zone = &frac[digits..];
    }
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let b = zone.as_bytes();
            if b.len() != 6 || b[3] != b':' || !matches!(b[0], b'+' | b'-') {
                return None;
            }
            let h: i64 = zone.get(1..3)?.parse().ok()?;
            let m: i64 = zone.get(4..6)?.parse().ok()?;
            if !zone[1..3].bytes().all(|c| c.is_ascii_digit())
                || !zone[4..6].bytes().all(|c| c.is_ascii_digit())
                || h > 23
                || m > 59
            {
                return None;
            }
            let sign = if b[0] == b'-' { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
    };
    Some(secs - offset)
}

/// `--expires-at`: a future RFC 3339 time within 100 years, stored in the
/// database's UTC form.
pub(crate) fn expires_at(raw: &str) -> Result<String, Failure> {
    let at = parse_rfc3339_any_offset(raw).ok_or_else(|| {
        Failure::usage(format!(
            "expires-at: {raw:?} is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)"
        ))
    })?;
    let now = store::time::unix_now();
    if at <= now {
        return Err(Failure::usage(format!(
            "expires-at: {raw} is not in the future (use keys revoke to stop a key now)"
        )));
    }
    if at > now + MAX_EXPIRY_DAYS * 86_400 {
        return Err(Failure::usage(format!(
            "expires-at: {raw} is more than {MAX_EXPIRY_DAYS} days away"
        )));
    }
    Ok(store::time::rfc3339(at))
}
