//! The span table: every page in use (a segment of a region, or quarantined pages), sorted by
//! address and disjoint, with O(log n) point and range queries.

use crate::addr::PageRange;
use crate::ordered::OrderedMap;
use crate::plan::Span;
use crate::regions::RegionId;
use crate::table::Storage;

/// Who owns a span of pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// This region.
    Region(RegionId),
    /// Nobody: the pages could not be reset and are never handed out again.
    Quarantined,
}

/// Pages in use: one segment of a region, or quarantined pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageSpan {
    /// The pages and what their segment wants for them.
    pub(crate) span: Span,
    pub(crate) owner: Owner,
}

impl PageSpan {
    fn start(&self) -> usize {
        self.span.range.start()
    }
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

    /// Whether `extra` more spans fit; a growable table reserves room for them.
    pub(crate) fn make_room(&mut self, extra: usize) -> bool {
        self.by_start.make_room(extra)
    }

    /// Records a span whose pages are free. `false` only if no room was made.
    pub(crate) fn insert(&mut self, span: Span, owner: Owner) -> bool {
        debug_assert!(!self.overlaps(span.range), "pages in use");
        let entry = PageSpan { span, owner };
        self.by_start.insert(entry.start(), entry).is_ok()
    }

    /// Forgets the span starting at `start`.
    pub(crate) fn remove(&mut self, start: usize) -> Option<PageSpan> {
        self.by_start.remove(&start)
    }

    /// Gives the span starting at `start` to `owner`; returns it as it was.
    pub(crate) fn set_owner(&mut self, start: usize, owner: Owner) -> Option<PageSpan> {
        let entry = self.by_start.get_mut(&start)?;
        let before = *entry;
        entry.owner = owner;
        Some(before)
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

    /// The lowest span that starts at or after `addr`.
    pub(crate) fn starting_from(&self, addr: usize) -> Option<PageSpan> {
        self.by_start.above(&addr, true).map(|(_, entry)| entry)
    }

    /// The span after `span` (the next higher one).
    pub(crate) fn next_after(&self, span: &PageSpan) -> Option<PageSpan> {
        self.by_start
            .above(&span.start(), false)
            .map(|(_, entry)| entry)
    }

    /// Whether any span shares a page with `range`.
    pub(crate) fn overlaps(&self, range: PageRange) -> bool {
        // The last span starting inside or before `range` is the only one that can reach in.
        !range.is_empty()
            && self
                .by_start
                .below(&(range.end() - 1), true)
                .is_some_and(|(_, s)| s.span.range.end() > range.start())
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
