//! Resource quantities (`100m`, `1.5Gi`, `2e3`) parsed exactly enough to compare them, as
//! request-versus-limit validation and QoS classification need. Upstream keeps arbitrary
//! precision; nano-units in an `i128` cover every quantity a pod spec realistically holds.

/// A parsed quantity, in nano-units (10⁻⁹) of its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i128);

/// Upstream's explanation when a quantity does not parse.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    /// Parses `<sign><digits>[.<digits>]<suffix>`, the suffix being binary (`Ki`…`Ei`),
    /// decimal (`n`, `u`, `m`, ``, `k`, `M`…`E`) or an exponent (`e3`, `E-2`). Fractions finer
    /// than a nano-unit round away from zero, as upstream rounds up.
    pub fn parse(text: &str) -> Option<Quantity> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let mut mantissa: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(digit - b'0'))?;
        }
        let (binary_power, decimal_power) = suffix_powers(suffix)?;
        // value = mantissa × 10^(decimal_power − fraction digits) × 2^binary_power, in nano-units.
        let mut value = mantissa.checked_mul(1i128.checked_shl(binary_power)?)?;
        let exponent = decimal_power + 9 - i32::try_from(fraction.len()).ok()?;
        if exponent >= 0 {
            value = value.checked_mul(10i128.checked_pow(u32::try_from(exponent).ok()?)?)?;
        } else {
            let divisor = 10i128.checked_pow(exponent.unsigned_abs())?;
            value = value / divisor + i128::from(value % divisor != 0);
        }
        Some(Quantity(if negative { -value } else { value }))
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Sums quantities of one resource; `None` on overflow.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_add(other.0).map(Quantity)
    }
}

/// The binary (power of two) and decimal (power of ten) scale of a suffix.
fn suffix_powers(suffix: &str) -> Option<(u32, i32)> {
    let binary = |power: u32| Some((power, 0));
    let decimal = |power: i32| Some((0, power));
    match suffix {
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            decimal(digits.parse().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Quantity;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn equal_amounts_in_any_notation_compare_equal() {
        assert_eq!(q("100m"), q("0.1"));
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1Gi"), q("1073741824"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(q(".5"), q("500m"));
        assert_eq!(q("+2"), q("2"));
        assert!(q("128Mi") < q("1Gi"));
        assert!(q("250m") < q("1"));
    }

    #[test]
    fn signs_and_precision() {
        assert!(q("-1").is_negative());
        assert!(!q("0").is_positive());
        assert!(q("1n").is_positive());
        assert_eq!(q("0.1n"), q("1n"), "sub-nano fractions round up");
        assert_eq!(q("1e-3"), q("1m"));
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        for text in [
            "", "abc", "1.2.3", "Ki", "1Kb", "1 Gi", ".", "1e", "1e+", "--1", "1mi",
        ] {
            assert_eq!(Quantity::parse(text), None, "{text}");
        }
    }
}
