//! Validation of an initialize request and the host calls it will need, computed before any
//! side effect. Pure arithmetic: no host, no tables.

use heapless::Vec;

use crate::addr::{is_aligned, PageRange};
use crate::error::{Error, Limit};
use crate::prot::{Lifetime, Prot};
use crate::request::{Content, InitRequest, MAX_SEGMENTS};
use crate::MAX_ACTION_PAIRS;

/// The pages one segment covers, with what the segment wants for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) range: PageRange,
    pub(crate) prot: Prot,
    pub(crate) lifetime: Lifetime,
    /// Index of the segment in the request (below `MAX_SEGMENTS`).
    pub(crate) segment: u8,
    /// Where the bytes that may not be zero end (`range.start()` to `range.end()`): for a
    /// segment, the end of its copied content, or the end of its pages if it is writable or
    /// its content was written in place (writes the map does not see); for free pages, the
    /// end of the old or trap bytes they may still hold. Resets and zero fills stop there.
    pub(crate) dirty_end: usize,
}

const _: () = assert!(MAX_SEGMENTS <= 256, "a segment index fits in a u8");

/// A list of spans, at most one per segment.
pub(crate) type Spans = Vec<Span, MAX_SEGMENTS>;

/// For each span of a plan, in order, where the old bytes of its pages may end: initialize
/// zero-fills from the end of the content to there.
pub(crate) type OldDirtyEnds = Vec<usize, MAX_SEGMENTS>;

/// One host call over a run of pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) range: PageRange,
    pub(crate) prot: Prot,
    /// The first request segment the run covers, for error reports.
    pub(crate) segment: usize,
}

/// A validated initialize request.
#[derive(Debug)]
pub(crate) struct Plan<'s> {
    /// The spans of the non-empty segments, sorted by address, sharing no page.
    pub(crate) spans: &'s [Span],
    /// The lowest Standard segment address.
    pub(crate) key: usize,
    /// Index of the segment that gives the key.
    pub(crate) key_segment: usize,
    /// Whether a span has the Finalize lifetime (and must be freed again by initialize).
    pub(crate) has_finalize: bool,
    /// From the first page of the lowest span to the end of the highest (empty if no
    /// segment covers a page).
    pub(crate) hull: PageRange,
}

impl<'s> Plan<'s> {
    /// Checks everything about `request` that does not depend on the map's tables. The spans
    /// go to `spans`, which the caller provides: the list is large, and moving it would copy
    /// it.
    pub(crate) fn validate<E>(
        request: &InitRequest<'_>,
        page_size: usize,
        allow_write_exec: bool,
        spans: &'s mut Spans,
    ) -> Result<Self, Error<E>> {
        if request.segments.len() > MAX_SEGMENTS {
            return Err(Error::CapacityExceeded(Limit::Segments));
        }
        if request.actions.len() > MAX_ACTION_PAIRS {
            return Err(Error::CapacityExceeded(Limit::ActionPairs));
        }
        spans.clear();
        let mut key: Option<(usize, usize)> = None;
        for (segment, seg) in request.segments.iter().enumerate() {
            if !is_aligned(seg.addr, page_size) {
                return Err(Error::Misaligned { segment });
            }
            let range = PageRange::covering(seg.addr, seg.size, page_size)
                .ok_or(Error::Overflow { segment })?;
            if seg.content.len() > seg.size {
                return Err(Error::ContentTooLong { segment });
            }
            if seg.group.prot.is_write_exec() && !allow_write_exec {
                return Err(Error::WriteExecute { segment });
            }
            if seg.group.lifetime == Lifetime::Standard && key.is_none_or(|(k, _)| seg.addr < k) {
                key = Some((seg.addr, segment));
            }
            if !range.is_empty() {
                // Cannot overflow: the content fits in the segment, whose pages were covered.
                let dirty_end = match seg.content {
                    Content::Bytes(bytes) if !seg.group.prot.contains(Prot::WRITE) => {
                        seg.addr + bytes.len()
                    }
                    _ => range.end(),
                };
                let pushed = spans.push(Span {
                    range,
                    prot: seg.group.prot,
                    lifetime: seg.group.lifetime,
                    // Below MAX_SEGMENTS (checked above), so it fits.
                    segment: segment as u8,
                    dirty_end,
                });
                debug_assert!(pushed.is_ok(), "at most MAX_SEGMENTS segments");
            }
        }
        let (key, key_segment) = key.ok_or(Error::NoStandardSegment)?;
        sort_by_start(spans);
        for pair in spans.windows(2) {
            if pair[0].range.end() > pair[1].range.start() {
                return Err(Error::SharedPage {
                    segment: pair[0].segment.max(pair[1].segment).into(),
                });
            }
        }
        let has_finalize = spans.iter().any(|s| s.lifetime == Lifetime::Finalize);
        let hull = match (spans.first(), spans.last()) {
            // Cannot fail: spans are sorted, page-aligned and disjoint.
            (Some(first), Some(last)) => {
                PageRange::new(first.range.start(), last.range.end(), 1).unwrap_or(first.range)
            }
            _ => PageRange::default(),
        };
        Ok(Self {
            spans,
            key,
            key_segment,
            has_finalize,
            hull,
        })
    }
}

/// Sorts spans by their first page: an insertion sort, which for at most `MAX_SEGMENTS`
/// spans (usually one to four, often sorted already) is as fast as any and much smaller
/// in code than the standard library's sort (which matters to embedded users).
fn sort_by_start(spans: &mut [Span]) {
    for i in 1..spans.len() {
        let mut j = i;
        while j > 0 && spans[j - 1].range.start() > spans[j].range.start() {
            spans.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Merges sorted, disjoint spans into maximal runs of touching pages, lazily. Only spans
/// that `keep` selects take part; with `same_prot`, only spans of equal protection merge.
pub(crate) fn runs<F: Fn(&Span) -> bool>(spans: &[Span], same_prot: bool, keep: F) -> Runs<'_, F> {
    Runs {
        spans,
        same_prot,
        keep,
    }
}

/// The iterator of [`runs`]: the spans not yet visited.
pub(crate) struct Runs<'a, F> {
    spans: &'a [Span],
    same_prot: bool,
    keep: F,
}

impl<F: Fn(&Span) -> bool> Iterator for Runs<'_, F> {
    type Item = Run;

    #[inline]
    fn next(&mut self) -> Option<Run> {
        let start = self.spans.iter().position(|s| (self.keep)(s))?;
        let first = &self.spans[start];
        let mut run = Run {
            range: first.range,
            prot: first.prot,
            segment: first.segment.into(),
        };
        let mut used = start + 1;
        for span in &self.spans[used..] {
            let joins = (self.keep)(span)
                && span.range.start() == run.range.end()
                && (!self.same_prot || span.prot == run.prot);
            let Some(joined) = run.range.join(&span.range).filter(|_| joins) else {
                break;
            };
            run.range = joined;
            if run.prot != span.prot {
                // A mixed run: remember that some page in it is not read-write.
                run.prot = Prot::NONE;
            }
            used += 1;
        }
        self.spans = &self.spans[used..];
        Some(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Segment;

    const P: usize = 0x1000;

    fn validate<'s>(segments: &[Segment<'_>], spans: &'s mut Spans) -> Result<Plan<'s>, Error<()>> {
        Plan::validate(&InitRequest::new(segments, &[]), P, false, spans)
    }

    #[test]
    fn sorts_spans_and_picks_lowest_standard_key() {
        let segs = [
            Segment::new(Prot::READ_WRITE, 0x5000, 10, &[]),
            Segment::with_lifetime(Prot::READ, Lifetime::Finalize, 0x1000, P, &[]),
            Segment::new(Prot::READ_EXEC, 0x3000, P + 1, &[]),
        ];
        let mut spans = Spans::new();
        let plan = validate(&segs, &mut spans).unwrap();
        assert_eq!(plan.key, 0x3000);
        assert_eq!(plan.key_segment, 2);
        let starts: [usize; 3] = core::array::from_fn(|i| plan.spans[i].range.start());
        assert_eq!(starts, [0x1000, 0x3000, 0x5000]);
        assert_eq!(plan.spans[1].range.end(), 0x5000);
    }

    #[test]
    fn rejects_in_request_order_with_segment_index() {
        let content = [0u8; 3];
        assert_eq!(
            validate(
                &[
                    Segment::new(Prot::READ, 0x1000, 1, &[]),
                    Segment::new(Prot::READ, 0x2001, 1, &[])
                ],
                &mut Spans::new()
            )
            .unwrap_err(),
            Error::Misaligned { segment: 1 }
        );
        assert_eq!(
            validate(
                &[Segment::new(Prot::READ, 0x1000, 2, &content)],
                &mut Spans::new()
            )
            .unwrap_err(),
            Error::ContentTooLong { segment: 0 }
        );
        assert_eq!(
            validate(
                &[Segment::new(Prot::READ, usize::MAX & !0xfff, 2, &[])],
                &mut Spans::new()
            )
            .unwrap_err(),
            Error::Overflow { segment: 0 }
        );
        assert_eq!(
            validate(
                &[Segment::new(Prot::ALL, 0x1000, 1, &[])],
                &mut Spans::new()
            )
            .unwrap_err(),
            Error::WriteExecute { segment: 0 }
        );
        assert_eq!(
            validate(&[], &mut Spans::new()).unwrap_err(),
            Error::NoStandardSegment
        );
        assert_eq!(
            validate(
                &[
                    Segment::new(Prot::READ, 0x1000, 1, &[]),
                    Segment::new(Prot::READ, 0x1000, 0, &[]),
                    Segment::new(Prot::READ, 0x2000, 1, &[]),
                    Segment::new(Prot::READ, 0x1000, 1, &[])
                ],
                &mut Spans::new()
            )
            .unwrap_err(),
            Error::SharedPage { segment: 3 }
        );
    }

    #[test]
    fn runs_merge_touching_spans() {
        let segs = [
            Segment::new(Prot::READ_EXEC, 0x1000, P, &[]),
            Segment::new(Prot::READ_EXEC, 0x2000, P, &[]),
            Segment::new(Prot::READ, 0x3000, P, &[]),
            Segment::new(Prot::READ_WRITE, 0x4000, P, &[]),
            Segment::new(Prot::READ, 0x6000, P, &[]),
        ];
        let mut spans = Spans::new();
        let plan = validate(&segs, &mut spans).unwrap();
        let protect: Vec<Run, 16> =
            runs(plan.spans, true, |s| s.prot != Prot::READ_WRITE).collect();
        let got: [(usize, usize, Prot); 3] = core::array::from_fn(|i| {
            (
                protect[i].range.start(),
                protect[i].range.end(),
                protect[i].prot,
            )
        });
        assert_eq!(
            got,
            [
                (0x1000, 0x3000, Prot::READ_EXEC),
                (0x3000, 0x4000, Prot::READ),
                (0x6000, 0x7000, Prot::READ)
            ]
        );
        assert_eq!(protect.len(), 3);
        let all: Vec<Run, 16> = runs(plan.spans, false, |_| true).collect();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].range.start(), all[0].range.end()), (0x1000, 0x5000));
    }
}
