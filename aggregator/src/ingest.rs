//! Click batch ingest: parse the edge's batch, validate every record on its
//! own, keep the good ones and explain the bad ones.
//!
//! Owns the per-record rules on top of the shared wire validation: the click
//! time must be within the accepted age and clock skew, and (through the
//! catalogue) agree with its link. Does not store anything: the route hands
//! the accepted rows to the store's writer and answers only once they are
//! durable.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use clickstitch_shared::{Click, FieldError, GeoBlock, RawClick, RawGeoBlock};

use crate::error::Problem;

/// Time limits on incoming records.
#[derive(Debug, Clone, Copy)]
pub struct TimePolicy {
    /// The aggregator's clock, Unix ms.
    pub now_ms: u64,
    /// Oldest accepted record, ms before now.
    pub max_age_ms: u64,
    /// Furthest accepted record into the future, ms after now.
    pub max_future_ms: u64,
}

impl TimePolicy {
    /// Why `at_ms` is outside the window (`None` when inside).
    pub fn check(&self, at_ms: u64) -> Option<String> {
        if at_ms > self.now_ms.saturating_add(self.max_future_ms) {
            Some(format!(
                "is more than {} s in the future",
                self.max_future_ms / 1000
            ))
        } else if at_ms.saturating_add(self.max_age_ms) < self.now_ms {
            let hours = self.max_age_ms / 3_600_000;
            Some(if hours.is_multiple_of(24) && hours >= 48 {
                format!("is older than {} days", hours / 24)
            } else {
                format!("is older than {hours} hours")
            })
        } else {
            None
        }
    }
}

/// Which list a rejected record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// `clicks[i]`.
    Click,
    /// `geo_blocks[i]`.
    GeoBlock,
}

/// A record that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Which list.
    pub kind: RecordKind,
    /// Index in that list.
    pub index: usize,
    /// The record's id, when it had a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What is wrong.
    pub errors: Vec<Problem>,
}

/// The batch after validation.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    /// Accepted clicks, with their index in the request.
    pub clicks: Vec<(usize, Click)>,
    /// Accepted geo blocks, with their index.
    pub geo_blocks: Vec<(usize, GeoBlock)>,
    /// Everything refused.
    pub rejected: Vec<Rejection>,
}

/// Most records (clicks and geo blocks together) one batch may carry.
pub const MAX_BATCH_RECORDS: usize = 10_000;

/// Most rejected records an answer lists one by one (the rest are only
/// counted), so that a batch of garbage cannot make the answer huge.
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// The marker of a list that passed [`MAX_BATCH_RECORDS`].
const TOO_MANY: &str = "too many records";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "bounded")]
    clicks: Vec<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "bounded")]
    geo_blocks: Vec<&'a RawValue>,
}

/// A JSON array of at most [`MAX_BATCH_RECORDS`] raw records: parsing stops
/// at the first one beyond, so ten million empty records cost no more than
/// ten thousand.
fn bounded<'de, D>(d: D) -> Result<Vec<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<&'de RawValue>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_BATCH_RECORDS} records")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_BATCH_RECORDS));
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                if out.len() == MAX_BATCH_RECORDS {
                    return Err(serde::de::Error::custom(TOO_MANY));
                }
                out.push(raw);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded)
}

/// Why a body is not a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Not `{"clicks": [...], "geo_blocks": [...]}`.
    #[error("body is not a click batch: {0}")]
    Malformed(String),
    /// More than [`MAX_BATCH_RECORDS`] records.
    #[error("a batch carries at most {MAX_BATCH_RECORDS} records (clicks and geo blocks together); split it")]
    TooManyRecords,
}

fn problems(errors: Vec<FieldError>) -> Vec<Problem> {
    errors
        .into_iter()
        .map(|e| Problem::new(e.field, e.message))
        .collect()
}

/// Reads the `id` field of a record that failed to parse, for the report.
fn loose_id(raw: &RawValue, key: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Loose {
        #[serde(default)]
        click_id: Option<String>,
        #[serde(default)]
        event_id: Option<String>,
    }
    let l: Loose = serde_json::from_str(raw.get()).ok()?;
    let id = if key == "click_id" {
        l.click_id
    } else {
        l.event_id
    };
    id.map(|s| s.chars().take(64).collect())
}

/// Parses and validates a batch body. `Err` only when the envelope itself is
/// not `{"clicks": [...], "geo_blocks": [...]}`, or carries more than
/// [`MAX_BATCH_RECORDS`] records.
pub fn parse_batch(body: &[u8], time: TimePolicy) -> Result<ParsedBatch, BatchError> {
    let envelope: Envelope<'_> = serde_json::from_slice(body).map_err(|e| {
        if e.to_string().starts_with(TOO_MANY) {
            BatchError::TooManyRecords
        } else {
            BatchError::Malformed(e.to_string())
        }
    })?;
    if envelope.clicks.len() + envelope.geo_blocks.len() > MAX_BATCH_RECORDS {
        return Err(BatchError::TooManyRecords);
    }
    let mut out = ParsedBatch::default();
    for (index, raw) in envelope.clicks.into_iter().enumerate() {
        let reject = |errors: Vec<Problem>| Rejection {
            kind: RecordKind::Click,
            index,
            id: loose_id(raw, "click_id"),
            errors,
        };
        let parsed = serde_json::from_str::<RawClick>(raw.get())
            .map_err(|e| vec![Problem::new("click", e.to_string())])
            .and_then(|r| Click::try_from(r).map_err(problems));
        match parsed {
            Ok(click) => match time.check(click.clicked_at_ms()) {
                None => out.clicks.push((index, click)),
                Some(why) => out
                    .rejected
                    .push(reject(vec![Problem::new("clicked_at_ms", why)])),
            },
            Err(errors) => out.rejected.push(reject(errors)),
        }
    }
    for (index, raw) in envelope.geo_blocks.into_iter().enumerate() {
        let reject = |errors: Vec<Problem>| Rejection {
            kind: RecordKind::GeoBlock,
            index,
            id: loose_id(raw, "event_id"),
            errors,
        };
        let parsed = serde_json::from_str::<RawGeoBlock>(raw.get())
            .map_err(|e| vec![Problem::new("geo_block", e.to_string())])
            .and_then(|r| GeoBlock::try_from(r).map_err(problems));
        match parsed {
            Ok(block) => match time.check(block.event_id.timestamp_ms()) {
                None => out.geo_blocks.push((index, block)),
                Some(why) => out
                    .rejected
                    .push(reject(vec![Problem::new("blocked_at_ms", why)])),
            },
            Err(errors) => out.rejected.push(reject(errors)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000_000;

    fn policy() -> TimePolicy {
        TimePolicy {
            now_ms: NOW,
            max_age_ms: 3_600_000,
            max_future_ms: 60_000,
        }
    }

    #[test]
    fn a_batch_of_more_than_ten_thousand_records_is_refused_without_reading_them_all() {
        let many = |n: usize| {
            format!(
                "{{\"clicks\": [{}], \"geo_blocks\": []}}",
                vec!["{}"; n].join(",")
            )
        };
        let at_limit = parse_batch(many(MAX_BATCH_RECORDS).as_bytes(), policy())
            .expect("at the limit: every record is read (and refused)");
        assert_eq!(at_limit.rejected.len(), MAX_BATCH_RECORDS);
        assert_eq!(
            parse_batch(many(MAX_BATCH_RECORDS + 1).as_bytes(), policy()).err(),
            Some(BatchError::TooManyRecords)
        );
        let both = format!(
            "{{\"clicks\": [{}], \"geo_blocks\": [{}]}}",
            vec!["{}"; 6_000].join(","),
            vec!["{}"; 6_000].join(",")
        );
        assert_eq!(
            parse_batch(both.as_bytes(), policy()).err(),
            Some(BatchError::TooManyRecords),
            "clicks and geo blocks count together"
        );
    }

    #[test]
    fn an_envelope_that_is_not_a_batch_is_an_error() {
        assert!(parse_batch(b"not json", policy()).is_err());
        assert!(parse_batch(br#"{"clicks": 5}"#, policy()).is_err());
        assert!(parse_batch(br#"{"clickz": []}"#, policy()).is_err());
        let empty = parse_batch(b"{}", policy()).expect("empty batch is fine");
        assert!(empty.clicks.is_empty() && empty.rejected.is_empty());
    }

    #[test]
    fn records_of_the_wrong_shape_are_rejected_one_by_one() {
        let body = br#"{"clicks": [{"click_id": "x", "asn": "not a number"}, 7]}"#;
        let parsed = parse_batch(body, policy()).expect("envelope ok");
        assert_eq!(parsed.rejected.len(), 2);
        assert_eq!(parsed.rejected[0].id.as_deref(), Some("x"));
        assert_eq!(parsed.rejected[1].index, 1);
    }

    #[test]
    fn time_limits_apply() {
        assert!(policy().check(NOW).is_none());
        assert!(policy().check(NOW + 120_000).is_some());
        assert!(policy().check(NOW - 7_200_000).is_some());
    }
}
