//! Resource quantities (`100m`, `1.5Gi`, `2e3`) as upstream's `resource.Quantity` parses,
//! compares, adds and prints them. Upstream keeps arbitrary precision; nano-units in an `i128`
//! hold every quantity up to 10²⁹, far beyond any real capacity or request.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Upstream's explanation when a quantity does not have a quantity's shape.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Why text is not a quantity, in upstream's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{}", FORMAT_ERROR)]
    Format,
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// How a quantity is written back: upstream keeps the notation it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `12e6`
    DecimalExponent,
    /// `5Gi`
    BinarySI,
    /// `500m`, `12M`
    #[default]
    DecimalSI,
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// A quantity of a resource, in nano-units (10⁻⁹), with the notation it prints in.
/// Equality and order compare amounts only: `1k` equals `1000`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Quantity {
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSI,
    };

    /// The quantity `text` spells, or `None` when it spells none (see [`FromStr`] for why).
    pub fn parse(text: &str) -> Option<Quantity> {
        text.parse().ok()
    }

    /// A whole number of units in `format` (`from_int(3, BinarySI)` prints as `3`).
    pub fn from_int(value: i64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(value) * NANOS_PER_UNIT,
            format,
        }
    }

    /// Thousandths of a unit in decimal notation (millicores).
    pub fn from_milli(value: i64) -> Quantity {
        Quantity {
            nanos: i128::from(value) * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    pub fn format(self) -> Format {
        self.format
    }

    pub fn is_zero(self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }

    pub fn is_positive(self) -> bool {
        self.nanos > 0
    }

    /// The sum; a zero `self` takes `other`'s notation, as upstream's `Add` does. `None` on
    /// overflow.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.combine(other, i128::checked_add)
    }

    /// The difference, with `checked_add`'s notation rule.
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        self.combine(other, i128::checked_sub)
    }

    fn combine(self, other: Quantity, op: fn(i128, i128) -> Option<i128>) -> Option<Quantity> {
        let format = if self.is_zero() {
            other.format
        } else {
            self.format
        };
        Some(Quantity {
            nanos: op(self.nanos, other.nanos)?,
            format,
        })
    }

    /// The quantity times `factor`.
    pub fn checked_mul(self, factor: i64) -> Option<Quantity> {
        Some(Quantity {
            nanos: self.nanos.checked_mul(i128::from(factor))?,
            format: self.format,
        })
    }

    /// Whole units, rounded up like upstream's `Value()`: a request of `100m` memory is 1 byte.
    pub fn value(self) -> i64 {
        ceil_div(self.nanos, NANOS_PER_UNIT)
    }

    /// Thousandths, rounded up like upstream's `MilliValue()`: `1.5m` CPU is 2 millicores, so
    /// it never fits into 1m of free capacity.
    pub fn milli_value(self) -> i64 {
        ceil_div(self.nanos, NANOS_PER_UNIT / 1000)
    }

    /// Upstream's canonical form: the largest suffix that keeps the number whole, in the
    /// quantity's own notation (`1536Mi`, `1500m`, `1.5` → `1500m`, `12e6`, `0`). Beyond the
    /// largest suffix (`E`, `Ei`) the exact number is written with a decimal exponent, as
    /// upstream does since it stopped printing `1000E` as `1`.
    fn canonical(self) -> (i128, String) {
        if self.nanos == 0 {
            return (0, String::new());
        }
        // Binary quantities that are small or fractional print in decimal SI, as upstream's do.
        let mut si = self.format != Format::DecimalExponent;
        let binary_whole =
            self.nanos % NANOS_PER_UNIT == 0 && self.nanos.abs() >= 1024 * NANOS_PER_UNIT;
        if self.format == Format::BinarySI && binary_whole {
            let mut number = self.nanos / NANOS_PER_UNIT;
            let mut power = 0;
            while number % 1024 == 0 {
                number /= 1024;
                power += 1;
            }
            if let Some(suffix) = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].get(power) {
                return (number, suffix.to_string());
            }
            si = false;
        }
        // Decimal: every factor of ten into the exponent, then back to a multiple of three.
        let (mut number, mut exponent) = (self.nanos, -9i32);
        while number % 10 == 0 {
            number /= 10;
            exponent += 1;
        }
        while exponent.rem_euclid(3) != 0 {
            number *= 10;
            exponent -= 1;
        }
        let suffix = match exponent {
            -9 if si => "n",
            -6 if si => "u",
            -3 if si => "m",
            0 => "",
            3 if si => "k",
            6 if si => "M",
            9 if si => "G",
            12 if si => "T",
            15 if si => "P",
            18 if si => "E",
            _ => return (number, format!("e{exponent}")),
        };
        (number, suffix.to_string())
    }
}

fn ceil_div(value: i128, divisor: i128) -> i64 {
    let quotient = value.div_euclid(divisor) + i128::from(value.rem_euclid(divisor) != 0);
    quotient.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (number, suffix) = self.canonical();
        write!(f, "{number}{suffix}")
    }
}

/// The scale a suffix stands for.
enum Scale {
    Binary(u32),
    Decimal(i32),
}

fn interpret_suffix(suffix: &str) -> Option<(Scale, Format)> {
    let binary = |power| Some((Scale::Binary(power), Format::BinarySI));
    let decimal = |power| Some((Scale::Decimal(power), Format::DecimalSI));
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
            Some((
                Scale::Decimal(digits.parse().ok()?),
                Format::DecimalExponent,
            ))
        }
    }
}

/// Splits `<digits>[.<digits>]<suffix>` as upstream's `parseQuantityString` does: the suffix
/// is letters of `eEinumkKMGTP`, then an optional sign and digits. A missing number is zero
/// (upstream reads `Ki` and `.` as 0).
fn split_number(text: &str) -> Result<(&str, &str, &str), QuantityError> {
    let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (whole, rest) = text.split_at(digits_end(text));
    let (fraction, suffix) = match rest.strip_prefix('.') {
        Some(after) => after.split_at(digits_end(after)),
        None => ("", rest),
    };
    let letters = suffix
        .find(|c: char| !"eEinumkKMGTP".contains(c))
        .unwrap_or(suffix.len());
    let exponent = suffix[letters..]
        .strip_prefix(['+', '-'])
        .unwrap_or(&suffix[letters..]);
    if !exponent.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Format);
    }
    Ok((whole, fraction, suffix))
}

impl FromStr for Quantity {
    type Err = QuantityError;

    /// Fractions finer than a nano-unit round away from zero, as upstream rounds them up
    /// ("if you want some resources, you should get some resources").
    fn from_str(text: &str) -> Result<Quantity, QuantityError> {
        if text.is_empty() {
            return Err(QuantityError::Format);
        }
        let (negative, unsigned) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (whole, fraction, suffix) = split_number(unsigned)?;
        let (scale, format) = interpret_suffix(suffix).ok_or(QuantityError::Suffix)?;
        let mut mantissa: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(digit - b'0')))
                .ok_or(QuantityError::Numeric)?;
        }
        let (shift, decimal_power) = match scale {
            Scale::Binary(power) => (power, 0),
            Scale::Decimal(power) => (0, power),
        };
        // nanos = mantissa × 2^shift × 10^(decimal_power + 9 − fraction digits)
        let mut nanos = mantissa
            .checked_mul(1i128 << shift)
            .ok_or(QuantityError::Numeric)?;
        let fraction_digits = i32::try_from(fraction.len()).map_err(|_| QuantityError::Numeric)?;
        let exponent = decimal_power
            .saturating_add(9)
            .saturating_sub(fraction_digits);
        if nanos != 0 {
            if exponent >= 0 {
                let factor = 10i128
                    .checked_pow(exponent.unsigned_abs())
                    .ok_or(QuantityError::Numeric)?;
                nanos = nanos.checked_mul(factor).ok_or(QuantityError::Numeric)?;
            } else {
                let divisor = 10i128.checked_pow(exponent.unsigned_abs());
                nanos = divisor.map_or(1, |d| nanos / d + i128::from(nanos % d != 0));
            }
        }
        // A fraction of a binary unit prints in decimal, as upstream switches the format.
        let format = if format == Format::BinarySI && nanos > 0 && nanos < NANOS_PER_UNIT {
            Format::DecimalSI
        } else {
            format
        };
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }
}

impl TryFrom<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> for Quantity {
    type Error = QuantityError;

    fn try_from(
        quantity: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Result<Self, Self::Error> {
        quantity.0.parse()
    }
}

impl From<Quantity> for k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    fn from(quantity: Quantity) -> Self {
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(quantity.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    fn canonical(text: &str) -> String {
        q(text).to_string()
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
        assert_eq!(q("-0.1n"), q("-1n"), "away from zero");
        assert_eq!(q("1e-3"), q("1m"));
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        let upstream = [
            "1.1.M",
            "1+1.0M",
            "0.1mi",
            "0.1am",
            "aoeu",
            ".5i",
            "1i",
            "-3.01i",
            "-3.01e-",
            "1e4294967297",
            " 1",
            "1 ",
        ];
        for text in ["", "abc", "1.2.3", "1Kb", "1 Gi", "1e", "1e+", "--1", "1mi"]
            .into_iter()
            .chain(upstream)
        {
            assert_eq!(Quantity::parse(text), None, "{text}");
        }
    }

    #[test]
    fn a_missing_number_is_zero_like_upstream() {
        assert_eq!(q("Ki"), Quantity::ZERO);
        assert_eq!(q("."), Quantity::ZERO);
        assert_eq!(q("1.G"), q("1G"));
        assert_eq!(q("007"), q("7"));
    }

    #[test]
    fn errors_use_upstream_wording() {
        assert_eq!(
            "1 Gi".parse::<Quantity>().unwrap_err().to_string(),
            FORMAT_ERROR
        );
        assert_eq!("1mi".parse::<Quantity>(), Err(QuantityError::Suffix));
        assert_eq!(
            "1e".parse::<Quantity>().unwrap_err().to_string(),
            "unable to parse quantity's suffix"
        );
        assert_eq!(
            "99999999999999999999999999999999999999999".parse::<Quantity>(),
            Err(QuantityError::Numeric)
        );
    }

    #[test]
    fn canonical_form_follows_upstream() {
        let cases = [
            ("0", "0"),
            ("0Gi", "0"),
            ("1", "1"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1.5", "1500m"),
            ("0.1", "100m"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("1200M", "1200M"),
            ("12e6", "12e6"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1000e-3", "1"),
            ("1.5e3", "1500"),
            ("1Ki", "1Ki"),
            ("1024Ki", "1Mi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1.5Ki", "1536"),
            ("0.5Ki", "512"),
            ("100Mi", "100Mi"),
            ("5n", "5n"),
            ("0.1n", "1n"),
            ("1.1Ki", "1126400m"),
            ("-1Ki", "-1Ki"),
            ("-100m", "-100m"),
            ("3E", "3E"),
            ("1000E", "1e21"),
            ("5000E", "5e21"),
            ("1000000E", "1e24"),
            ("1536Ei", "1536Ei"),
            ("1024Ei", "1180591620717411303424"),
            ("1Gi", "1Gi"),
            ("300Mi", "300Mi"),
            ("6Ki", "6Ki"),
            ("1001Gi", "1001Gi"),
            ("1024Gi", "1Ti"),
            ("5", "5"),
            ("1000M", "1G"),
            ("0.001T", "1G"),
            ("1000u", "1m"),
            ("1.08", "1080m"),
            ("1080000000n", "1080m"),
            ("300e6", "300e6"),
            (".001e12", "1e9"),
            ("0.001e0", "1e-3"),
            ("1000e-12", "1e-9"),
            ("80e-3", "80e-3"),
            ("1025", "1025"),
            ("00", "0"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
            ("-.001Ki", "-1024m"),
        ];
        for (text, expected) in cases {
            assert_eq!(canonical(text), expected, "{text}");
        }
    }

    #[test]
    fn arithmetic_keeps_upstream_notation() {
        let sum = q("1Gi").checked_add(q("512Mi")).unwrap();
        assert_eq!(sum.to_string(), "1536Mi");
        assert_eq!(
            Quantity::ZERO.checked_add(q("1Gi")).unwrap().format(),
            Format::BinarySI,
            "zero takes the other's format"
        );
        assert_eq!(q("1").checked_sub(q("250m")).unwrap().to_string(), "750m");
        assert_eq!(q("100m").checked_mul(3).unwrap().to_string(), "300m");
        assert_eq!(q("2Gi").checked_sub(q("2Gi")).unwrap().to_string(), "0");
        assert_eq!(Quantity::from_milli(1500).to_string(), "1500m");
        assert_eq!(Quantity::from_int(3, Format::BinarySI).to_string(), "3");
        assert_eq!(
            Quantity::from_int(2048, Format::BinarySI).to_string(),
            "2Ki"
        );
        let max = Quantity {
            nanos: i128::MAX,
            format: Format::DecimalSI,
        };
        assert_eq!(max.checked_add(q("1n")), None);
    }

    #[test]
    fn millicores_and_bytes() {
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(
            q("1.5m").milli_value(),
            2,
            "fractions of a millicore round up"
        );
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1.5Gi").value(), 3 << 29);
        assert_eq!(q("128974848").value(), 128_974_848);
        assert_eq!(q("129e6").value(), 129_000_000);
        assert_eq!(q("129M").value(), 129_000_000);
        assert_eq!(q("1k").value(), 1000);
        assert_eq!(q("100m").value(), 1, "values round up");
        assert_eq!(q("110").value(), 110);
    }

    #[test]
    fn converts_with_the_api_type() {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Text;
        assert_eq!(Quantity::try_from(&Text("1.5Gi".into())), Ok(q("1536Mi")));
        assert!(Quantity::try_from(&Text("lots".into())).is_err());
        assert_eq!(Text::from(q("2000m")).0, "2");
    }
}
