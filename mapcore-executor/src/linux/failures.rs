//! The failure messages of one call, bounded: a batch of millions of bad entries must not
//! make a reply (or the memory that builds it) millions of messages long.
//!
//! The first [`Failures::SHOWN`] messages are kept in full, later ones only counted; a
//! message is formatted only if it is kept.

use std::fmt;

/// The failures of one call: the first few messages, and how many there were.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Failures {
    shown: Vec<String>,
    total: u64,
}

impl Failures {
    /// How many messages are kept in full.
    pub(crate) const SHOWN: usize = 8;

    /// Records a failure; `message` is called only if the message is kept.
    pub(crate) fn push(&mut self, message: impl FnOnce() -> String) {
        self.total += 1;
        if self.shown.len() < Self::SHOWN {
            self.shown.push(message());
        }
    }

    /// Whether no failure was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The messages kept, oldest first.
    #[cfg(test)]
    pub(crate) fn shown(&self) -> &[String] {
        &self.shown
    }
}

/// `first; second; ...`, then `; and N more` for those not kept.
impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown.join("; "))?;
        let more = self.total - self.shown.len() as u64;
        if more > 0 {
            write!(f, "; and {more} more")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_messages_and_counts_the_rest() {
        let mut failures = Failures::default();
        assert!(failures.is_empty());
        assert_eq!(failures.to_string(), "");
        let mut formatted = 0;
        for i in 0..1000 {
            failures.push(|| {
                formatted += 1;
                format!("entry {i}")
            });
        }
        assert_eq!(formatted, Failures::SHOWN);
        let text = failures.to_string();
        assert!(text.starts_with("entry 0; entry 1; "), "{text}");
        assert!(text.ends_with("entry 7; and 992 more"), "{text}");
        assert!(!failures.is_empty());
    }
}
