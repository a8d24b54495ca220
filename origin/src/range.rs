//! Single-range `Range: bytes=…` requests (RFC 9110 §14), so an agent can resume a download.

/// What to send for a `Range` header against an object of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole object (200). Multiple ranges and malformed headers are
    /// ignored, as RFC 9110 §14.2 allows.
    Full,
    /// Send bytes `start..=end` (206).
    Partial {
        /// First byte offset.
        start: u64,
        /// Last byte offset, inclusive.
        end: u64,
    },
    /// The range starts past the end (416).
    Unsatisfiable,
}

/// Interprets `header` (the `Range` value, if any) for an object of `len` bytes. Accepts
/// `bytes=N-`, `bytes=N-M` and `bytes=-S` (the last S bytes).
pub fn parse(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let num =
        |s: &str| if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse::<u64>().ok() };
    match (first.is_empty(), num(first), num(last)) {
        // bytes=-S
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial { start: len - suffix.min(len), end: len - 1 }
            }
        }
        // bytes=N-
        (false, Some(start), None) if last.is_empty() => {
            if start >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial { start, end: len - 1 }
            }
        }
        // bytes=N-M
        (false, Some(start), Some(end)) if start <= end => {
            if start >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial { start, end: end.min(len - 1) }
            }
        }
        _ => RangeRequest::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::{Full, Partial, Unsatisfiable};
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse(None, 10), Full);
        assert_eq!(parse(Some("bytes=2-"), 10), Partial { start: 2, end: 9 });
        assert_eq!(parse(Some("bytes=2-4"), 10), Partial { start: 2, end: 4 });
        assert_eq!(parse(Some("bytes=2-400"), 10), Partial { start: 2, end: 9 });
        assert_eq!(parse(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(parse(Some("bytes=-30"), 10), Partial { start: 0, end: 9 });
        assert_eq!(parse(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Unsatisfiable);
    }

    #[test]
    fn ignores_what_it_does_not_support() {
        for h in ["bytes=1-2,4-5", "items=1-2", "bytes=5-2", "bytes=a-", "bytes=-", "bytes=+1-2", "bytes=1"] {
            assert_eq!(parse(Some(h), 10), Full, "{h}");
        }
    }
}
