//! The compressed index lists of Indexed Jobs (`status.completedIndexes`,
//! `status.failedIndexes`, a success policy's `succeededIndexes`): ascending indexes and
//! `first-last` intervals joined by commas, such as `1,3-5,7`. The API server validates
//! them and the job controller reads and writes them, with upstream's wording.

use std::collections::BTreeSet;

/// Why an index list is malformed, as upstream's validation says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexesError {
    #[error("the fragment {0:?} violates the requirement that an index interval can have at most two parts separated by '-'")]
    Interval(String),
    #[error("cannot convert string to integer for index: {0:?}")]
    NotAnInteger(String),
    #[error("too large index: {0:?}")]
    TooLarge(String),
    #[error("non-increasing order, previous: {previous}, current: {current}")]
    NotIncreasing { previous: i64, current: i64 },
}

/// Reads an index list of a job with `completions` completions, strictly: every index
/// below `completions`, in increasing order. Returns the indexes.
pub fn parse(text: &str, completions: i32) -> Result<BTreeSet<i32>, IndexesError> {
    let mut indexes = BTreeSet::new();
    if text.is_empty() {
        return Ok(indexes);
    }
    let mut last: Option<i64> = None;
    for interval in text.split(',') {
        let limits: Vec<&str> = interval.split('-').collect();
        if limits.len() > 2 {
            return Err(IndexesError::Interval(interval.to_string()));
        }
        let mut bounds = Vec::with_capacity(2);
        for limit in &limits {
            let value: i64 = limit
                .parse()
                .map_err(|_| IndexesError::NotAnInteger(limit.to_string()))?;
            if value >= i64::from(completions) {
                return Err(IndexesError::TooLarge(limit.to_string()));
            }
            if let Some(previous) = last.filter(|p| *p >= value) {
                return Err(IndexesError::NotIncreasing {
                    previous,
                    current: value,
                });
            }
            last = Some(value);
            bounds.push(value as i32);
        }
        let (first, end) = (bounds[0], *bounds.last().unwrap_or(&bounds[0]));
        indexes.extend(first..=end);
    }
    Ok(indexes)
}

/// Reads an index list leniently, as the job controller does: malformed parts and indexes
/// at or above `completions` are skipped.
pub fn parse_lenient(text: &str, completions: i32) -> BTreeSet<i32> {
    let mut indexes = BTreeSet::new();
    for interval in text.split(',').filter(|i| !i.is_empty()) {
        let mut limits = interval.splitn(2, '-').map(str::parse::<i32>);
        let (Some(Ok(first)), end) = (limits.next(), limits.next()) else {
            continue;
        };
        let end = match end {
            None => first,
            Some(Ok(end)) => end,
            Some(Err(_)) => continue,
        };
        indexes.extend((first.max(0)..=end.min(completions - 1)).filter(|i| *i < completions));
    }
    indexes
}

/// Writes indexes in the compressed form: runs of two or more consecutive indexes become
/// `first-last`, as upstream writes them.
pub fn format(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    let flush = |run: (i32, i32), parts: &mut Vec<String>| {
        parts.push(if run.0 == run.1 {
            run.0.to_string()
        } else {
            format!("{}-{}", run.0, run.1)
        })
    };
    for &index in indexes {
        run = match run {
            Some((first, last)) if index == last + 1 => Some((first, index)),
            Some(done) => {
                flush(done, &mut parts);
                Some((index, index))
            }
            None => Some((index, index)),
        };
    }
    if let Some(done) = run {
        flush(done, &mut parts);
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_intervals() {
        let indexes = parse("1,3-5,7", 8).unwrap();
        assert_eq!(indexes.iter().copied().collect::<Vec<_>>(), [1, 3, 4, 5, 7]);
        assert_eq!(format(&indexes), "1,3-5,7");
        assert_eq!(format(&[0, 1].into()), "0-1");
        assert_eq!(format(&BTreeSet::new()), "");
    }

    #[test]
    fn strict_errors_read_like_upstream() {
        assert_eq!(
            parse("5", 3).unwrap_err().to_string(),
            "too large index: \"5\""
        );
        assert_eq!(
            parse("2,1", 3).unwrap_err().to_string(),
            "non-increasing order, previous: 2, current: 1"
        );
        assert_eq!(
            parse("a", 3).unwrap_err().to_string(),
            "cannot convert string to integer for index: \"a\""
        );
        assert!(parse("1-2-3", 5).is_err());
    }

    #[test]
    fn lenient_reading_skips_what_it_cannot_use() {
        let indexes = parse_lenient("0,x,2-9", 4);
        assert_eq!(indexes.iter().copied().collect::<Vec<_>>(), [0, 2, 3]);
    }
}
