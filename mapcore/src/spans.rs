//! The span table: every page in use (a segment of a region, or quarantined pages) and the
//! free pages whose protection is known, sorted by address and disjoint, with O(log n) point
//! and range queries.
//!
//! A freed span stays recorded as [`Owner::Free`] with the protection its pages were left at,
//! so that initialize knows which pages already have the protection it wants, and reusing the
//! same pages takes no insert or remove. Free pages without an entry (never claimed, or
//! evicted to make room in a full fixed table) are read-write unless their slab says
//! otherwise.
//!
//! Every entry also knows where the bytes that may not be zero end ([`Span::dirty_end`]), so
//! that freeing and reusing small code resets and zero-fills the bytes it wrote, not its whole
//! pages. Free pages without an entry may hold old bytes anywhere their slab ever claimed.

use core::num::NonZeroUsize;

use crate::addr::PageRange;
use crate::ordered::OrderedMap;
use crate::plan::Span;
use crate::prot::{Lifetime, Prot};
use crate::regions::RegionId;
use crate::table::Storage;

/// Who owns a span of pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// This region.
    Region(RegionId),
    /// Nobody: the pages could not be reset and are never handed out again.
    Quarantined,
    /// Nobody: free pages, left at the span's protection.
    Free,
}

/// What claiming a range of pages would meet: see [`Spans::survey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Survey {
    /// Some page of the range is in use (not free).
    pub(crate) in_use: bool,
    /// The protection all free entries over the range agree on, if they do (pages without an
    /// entry count as read-write).
    pub(crate) prot: Option<Prot>,
    /// Some page of the range has no entry.
    pub(crate) gaps: bool,
    /// At most how many entries claiming the range adds.
    pub(crate) extra: usize,
    /// Where the old bytes the range may hold end (its end if unknown).
    pub(crate) dirty_end: usize,
}

/// Pages in use (one segment of a region, or quarantined pages), or free pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageSpan {
    /// The pages and what their segment wants for them.
    pub(crate) span: Span,
    pub(crate) owner: Owner,
    /// For a span a region owns: where the region's next span starts (in address order), if
    /// it has one. A region's spans form this chain from its first one, so that visiting
    /// them takes one exact lookup a span, however many other entries lie between them.
    /// Never zero: it lies above this span's start.
    pub(crate) next: Option<NonZeroUsize>,
}

impl PageSpan {
    /// Where the next span of the region owning this one starts, if it has one.
    pub(crate) fn next(&self) -> Option<usize> {
        self.next.map(NonZeroUsize::get)
    }

    fn start(&self) -> usize {
        self.span.range.start()
    }
}

/// `first` if nothing else is in the way: gaps (pages with no entry) read-write.
fn agree(first: Option<Prot>, gaps: bool) -> Option<Prot> {
    first.filter(|&p| !gaps || p == Prot::READ_WRITE)
}

/// The span of a free entry: only its pages, their protection and where their old bytes end
/// (inside the pages) mean something.
#[inline]
fn free_span(range: PageRange, prot: Prot, dirty_end: usize) -> Span {
    debug_assert!(range.start() <= dirty_end && dirty_end <= range.end());
    Span {
        range,
        prot,
        lifetime: Lifetime::Standard,
        segment: 0,
        dirty_end,
    }
}

/// `start..end`, both page-aligned and ordered by the caller.
fn page_range(start: usize, end: usize) -> PageRange {
    PageRange::new(start, end, 1).unwrap_or_default()
}

/// The spans in use, keyed by their first page.
pub(crate) struct Spans<S: Storage> {
    by_start: S::SpanIndex<usize, PageSpan>,
}

impl<S: Storage> Default for Spans<S> {
    fn default() -> Self {
        Self {
            by_start: Default::default(),
        }
    }
}

impl<S: Storage> Spans<S> {
    /// The number of spans.
    pub(crate) fn len(&self) -> usize {
        self.by_start.len()
    }

    /// Whether `extra` more spans fit; a growable table reserves room for them. Reusing
    /// free pages exactly needs none (the common case), and no call into the index.
    #[inline]
    pub(crate) fn make_room(&mut self, extra: usize) -> bool {
        extra == 0 || self.by_start.make_room(extra)
    }

    /// Records `span` for `owner` over pages that are free, followed by the owner's span at
    /// `next`: free entries it covers are cut back or removed. `false` only if no room was
    /// made.
    #[inline]
    pub(crate) fn take(&mut self, span: Span, owner: Owner, next: Option<usize>) -> bool {
        let (start, end) = (span.range.start(), span.range.end());
        debug_assert!(next.is_none_or(|n| n > start), "chains go up");
        let next = next.and_then(NonZeroUsize::new);
        let entry = PageSpan { span, owner, next };
        // The same pages freed before: one entry, changed in place.
        if let Some(free) = self.by_start.get_mut(&start) {
            if free.owner == Owner::Free && free.span.range.end() == end {
                *free = entry;
                return true;
            }
        }
        while let Some(free) = self.first_ending_after(start).filter(|e| e.start() < end) {
            debug_assert!(free.owner == Owner::Free, "pages in use");
            let (from, to) = (free.start(), free.span.range.end());
            if from < start {
                if let Some(kept) = self.by_start.get_mut(&from) {
                    kept.span.range = page_range(from, start);
                    kept.span.dirty_end = kept.span.dirty_end.min(start);
                }
            } else {
                self.by_start.remove(&from);
            }
            if to > end {
                let dirty_end = free.span.dirty_end.clamp(end, to);
                if !self.insert_free(free_span(page_range(end, to), free.span.prot, dirty_end)) {
                    return false;
                }
            }
        }
        self.by_start.insert(start, entry).is_ok()
    }

    /// Records free pages. `false` only if no room was made.
    fn insert_free(&mut self, span: Span) -> bool {
        let entry = PageSpan {
            span,
            owner: Owner::Free,
            next: None,
        };
        self.by_start.insert(span.range.start(), entry).is_ok()
    }

    /// Ends the use of the span starting at `start`: quarantined if `settle` says `None`,
    /// otherwise free at the protection it returns, with its old bytes ending where it says.
    /// Returns the span as it was.
    #[inline]
    pub(crate) fn settle(
        &mut self,
        start: usize,
        settle: impl FnOnce(&Span) -> Option<(Prot, usize)>,
    ) -> Option<PageSpan> {
        let entry = self.by_start.get_mut(&start)?;
        let before = *entry;
        match settle(&before.span) {
            Some((prot, dirty_end)) => {
                entry.span = free_span(before.span.range, prot, dirty_end);
                entry.owner = Owner::Free;
            }
            None => entry.owner = Owner::Quarantined,
        }
        entry.next = None;
        Some(before)
    }

    /// Makes the owned span starting at `start` the last of its owner's chain, or followed
    /// by the one at `next`.
    pub(crate) fn set_next(&mut self, start: usize, next: Option<usize>) {
        if let Some(entry) = self.by_start.get_mut(&start) {
            debug_assert!(
                matches!(entry.owner, Owner::Region(_)),
                "chains link owned spans"
            );
            entry.next = next.and_then(NonZeroUsize::new);
        }
    }

    /// The span starting at `addr`.
    pub(crate) fn starting_at(&self, addr: usize) -> Option<PageSpan> {
        self.by_start.get(&addr)
    }

    /// The span holding the page at `addr`.
    pub(crate) fn containing(&self, addr: usize) -> Option<PageSpan> {
        let (_, entry) = self.by_start.below(&addr, true)?;
        entry.span.range.contains(addr).then_some(entry)
    }

    /// The lowest span that ends after `addr`.
    pub(crate) fn first_ending_after(&self, addr: usize) -> Option<PageSpan> {
        let (below, above) = self.by_start.around(&addr);
        below
            .filter(|(_, entry)| entry.span.range.contains(addr))
            .or(above)
            .map(|(_, entry)| entry)
    }

    /// The span after `span` (the next higher one).
    pub(crate) fn next_after(&self, span: &PageSpan) -> Option<PageSpan> {
        self.by_start
            .above(&span.start(), false)
            .map(|(_, entry)| entry)
    }

    /// What claiming the non-empty `range` would meet: pages in use, the protection of its
    /// free pages, how many entries it adds. One descent when one entry or none reaches in.
    #[inline]
    pub(crate) fn survey(&self, range: PageRange) -> Survey {
        let (start, end) = (range.start(), range.end());
        // Pages freed before with the same start (the common reuse): an entry starting at
        // `start` that covers the range is the only one reaching in, as entries do not
        // overlap. An exact lookup, which the hashed index of growable storage answers in O(1).
        if let Some(only) = self
            .by_start
            .get(&start)
            .filter(|e| e.span.range.end() >= end)
        {
            return Survey {
                in_use: only.owner != Owner::Free,
                prot: Some(only.span.prot),
                gaps: false,
                extra: usize::from(only.span.range.end() > end),
                dirty_end: only.span.dirty_end.min(end),
            };
        }
        let nothing = Survey {
            in_use: false,
            prot: Some(Prot::READ_WRITE),
            gaps: true,
            extra: 1,
            dirty_end: end,
        };
        // The last span starting inside or before `range`.
        let Some((_, last)) = self.by_start.below(&(end - 1), true) else {
            return nothing;
        };
        if last.span.range.end() <= start {
            return nothing;
        }
        if last.start() <= start {
            // The only entry reaching in.
            return Survey {
                in_use: last.owner != Owner::Free,
                prot: agree(Some(last.span.prot), last.span.range.end() < end),
                gaps: last.span.range.end() < end,
                extra: usize::from(last.start() != start)
                    + usize::from(last.span.range.end() > end),
                // Pages past the entry have none, and may hold old bytes.
                dirty_end: if last.span.range.end() < end {
                    end
                } else {
                    last.span.dirty_end.clamp(start, end)
                },
            };
        }
        let mut survey = Survey {
            in_use: false,
            prot: None,
            gaps: false,
            extra: 1 + usize::from(last.span.range.end() > end),
            dirty_end: end,
        };
        let mut at = start;
        let mut cursor = self.first_ending_after(start);
        let mut first = true;
        while let Some(entry) = cursor.filter(|e| e.start() < end) {
            if entry.owner != Owner::Free {
                survey.in_use = true;
                return survey;
            }
            let gap = entry.start() > at;
            survey.gaps |= gap;
            survey.prot = if first {
                agree(Some(entry.span.prot), gap)
            } else {
                survey
                    .prot
                    .filter(|&p| p == entry.span.prot && (!gap || p == Prot::READ_WRITE))
            };
            first = false;
            at = entry.span.range.end();
            cursor = self.next_after(&entry);
        }
        if at < end {
            survey.gaps = true;
            survey.prot = survey.prot.filter(|&p| p == Prot::READ_WRITE);
        }
        survey
    }

    /// How many free entries there are that `touched` selects, and how many it does not:
    /// `(untouched, touched)`. Walks the table: for a full fixed table only.
    pub(crate) fn count_free(&self, touched: impl Fn(PageRange) -> bool) -> (usize, usize) {
        let (mut untouched, mut touching) = (0, 0);
        let mut cursor = self.by_start.above(&0, true);
        while let Some((start, entry)) = cursor {
            if entry.owner == Owner::Free {
                if touched(entry.span.range) {
                    touching += 1;
                } else {
                    untouched += 1;
                }
            }
            cursor = self.by_start.above(&start, false);
        }
        (untouched, touching)
    }

    /// Forgets `evictable` free entries, lowest first, until `needed` more entries fit (all of
    /// them if `needed` is `None`); calls `lost` with each forgotten entry that was not
    /// read-write. Returns whether the room is there. Walks the table: for a full fixed table
    /// only.
    pub(crate) fn evict_free(
        &mut self,
        needed: Option<usize>,
        evictable: impl Fn(PageRange) -> bool,
        mut lost: impl FnMut(PageRange),
    ) -> bool {
        let mut cursor = self.by_start.above(&0, true);
        while needed.is_none_or(|n| !self.by_start.make_room(n)) {
            let Some((start, entry)) = cursor else {
                return false;
            };
            cursor = self.by_start.above(&start, false);
            if entry.owner == Owner::Free && evictable(entry.span.range) {
                self.by_start.remove(&start);
                if entry.span.prot != Prot::READ_WRITE {
                    lost(entry.span.range);
                }
            }
        }
        true
    }

    /// Forgets every span inside `range`.
    pub(crate) fn remove_within(&mut self, range: PageRange) {
        while let Some(entry) = self
            .first_ending_after(range.start())
            .filter(|s| s.start() < range.end())
        {
            debug_assert!(range.encloses(&entry.span.range), "span crosses the range");
            self.by_start.remove(&entry.start());
        }
    }

    #[cfg(any(test, feature = "testing"))]
    /// Every span, in address order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = PageSpan> + '_ {
        self.by_start.entries().map(|(_, entry)| entry)
    }

    /// Checks the tree and that spans are disjoint; returns what is broken.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        self.by_start.check()?;
        let mut end = 0;
        for (start, entry) in self.by_start.entries() {
            if start != entry.start() || entry.span.range.is_empty() {
                return Err("span keyed wrongly or empty");
            }
            if start < end {
                return Err("page spans overlap");
            }
            end = entry.span.range.end();
        }
        Ok(())
    }
}
