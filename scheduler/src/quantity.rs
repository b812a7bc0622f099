//! Resource quantities as the scheduler compares them: CPU in millicores, everything else in
//! whole units, both rounded up like upstream's `MilliValue()` and `Value()`, so a request of
//! `1.5m` CPU never fits into 1m of free capacity.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Nano-units (10⁻⁹) of a quantity; `None` when the text is not a quantity.
fn nanos(text: &str) -> Option<i128> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let split = unsigned.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let mut digits = whole.bytes().chain(fraction.bytes());
    let mantissa = digits.try_fold(0i128, |acc, d| acc.checked_mul(10)?.checked_add(i128::from(d - b'0')))?;
    let (shift, exponent) = match suffix {
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "" => (0, 0),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        other => (0, other.strip_prefix(['e', 'E'])?.parse::<i32>().ok()?),
    };
    let scaled = mantissa.checked_mul(1i128.checked_shl(shift)?)?;
    let power = exponent + 9 - i32::try_from(fraction.len()).ok()?;
    let value = if power >= 0 {
        scaled.checked_mul(10i128.checked_pow(power.unsigned_abs())?)?
    } else {
        let divisor = 10i128.checked_pow(power.unsigned_abs())?;
        scaled / divisor + i128::from(scaled % divisor != 0)
    };
    Some(if negative { -value } else { value })
}

fn ceil_div(value: i128, divisor: i128) -> i64 {
    let quotient = value.div_euclid(divisor) + i128::from(value.rem_euclid(divisor) != 0);
    quotient.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The quantity in thousandths, rounded up (CPU in millicores); unparsable quantities count
/// as zero, as the apiserver never admits them.
pub fn milli_value(quantity: &Quantity) -> i64 {
    nanos(&quantity.0).map_or(0, |n| ceil_div(n, 1_000_000))
}

/// The quantity in whole units, rounded up (bytes, pods, devices).
pub fn value(quantity: &Quantity) -> i64 {
    nanos(&quantity.0).map_or(0, |n| ceil_div(n, 1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity(text.to_string())
    }

    #[test]
    fn millicores_and_bytes() {
        assert_eq!(milli_value(&q("100m")), 100);
        assert_eq!(milli_value(&q("0.5")), 500);
        assert_eq!(milli_value(&q("2")), 2000);
        assert_eq!(milli_value(&q("1.5m")), 2, "fractions of a millicore round up");
        assert_eq!(value(&q("1Gi")), 1 << 30);
        assert_eq!(value(&q("1.5Gi")), 3 << 29);
        assert_eq!(value(&q("128974848")), 128_974_848);
        assert_eq!(value(&q("129e6")), 129_000_000);
        assert_eq!(value(&q("129M")), 129_000_000);
        assert_eq!(value(&q("1k")), 1000);
        assert_eq!(value(&q("100m")), 1, "values round up");
        assert_eq!(value(&q("110")), 110);
    }

    #[test]
    fn garbage_counts_as_zero() {
        assert_eq!(value(&q("lots")), 0);
        assert_eq!(milli_value(&q("")), 0);
    }
}
