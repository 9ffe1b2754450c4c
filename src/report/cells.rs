//! Cell formatting shared by the CSV forms: exact decimals that every CSV reader and the
//! FOCUS validator take as decimals, and RFC 4180 quoting.

use crate::money::Money;

/// `n / 10^decimals` exactly, always with a decimal point (`"3.0"`, `"0.000125"`): the
/// FOCUS validator types a column with no decimal point anywhere as integer and fails it.
pub fn scaled(n: i128, decimals: u32) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let a = n.unsigned_abs();
    let step = 10u128.pow(decimals);
    let (whole, frac) = (a / step, a % step);
    if frac == 0 {
        return format!("{sign}{whole}.0");
    }
    let digits = format!("{frac:0width$}", width = decimals as usize);
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// Dollars, exact, with a decimal point.
pub fn usd(m: Money) -> String {
    scaled(m.picos(), 12)
}

/// Appends one CSV field: quoted only when it holds a comma, quote, CR or LF, with quotes
/// doubled (RFC 4180). `None` is an empty unquoted field, which FOCUS reads as null.
pub fn field(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(v) = value else { return };
    if v.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.push(b'"');
        for b in v.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(v.as_bytes());
    }
}

/// Appends a whole CSV record and its line end (LF, which every CSV reader accepts).
pub fn record<'a>(out: &mut Vec<u8>, values: impl IntoIterator<Item = Option<&'a str>>) {
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        field(out, v);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_and_always_dotted() {
        assert_eq!(scaled(3_000_000, 6), "3.0");
        assert_eq!(scaled(125, 6), "0.000125");
        assert_eq!(scaled(-1_500_000_000_000, 12), "-1.5");
        assert_eq!(scaled(0, 12), "0.0");
        assert_eq!(usd(Money::from_picos(1)), "0.000000000001");
        assert_eq!(usd(Money::from_usd(22)), "22.0");
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut out = Vec::new();
        record(
            &mut out,
            [Some("plain"), None, Some("a,b"), Some("say \"hi\""), Some("two\nlines"), Some("")],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain,,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\n"
        );
    }
}
