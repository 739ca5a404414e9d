//! The launch conventions: how the controller hands the executor its stream.

/// How the controller reaches the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Launch {
    /// Two inherited descriptors: from the controller, to the controller.
    Fds { read: i32, write: i32 },
    /// Listen on a TCP address and serve one connection.
    Listen(String),
}

/// Parses what follows a launch convention's prefix.
type ParseRest = fn(&str) -> Option<Launch>;

/// The launch conventions, tried in order: a prefix and how to parse what follows it.
const CONVENTIONS: [(&str, ParseRest); 2] = [
    ("filedescs=", |rest| {
        let (read, write) = rest.split_once(',')?;
        Some(Launch::Fds {
            read: read.parse().ok()?,
            write: write.parse().ok()?,
        })
    }),
    ("listen=", |rest| {
        (!rest.is_empty()).then(|| Launch::Listen(rest.to_owned()))
    }),
];

impl Launch {
    /// Parses the arguments after the program name.
    pub(crate) fn parse(args: &[String]) -> Option<Self> {
        match args {
            [one] => CONVENTIONS
                .iter()
                .find_map(|(prefix, parse)| one.strip_prefix(prefix).and_then(parse)),
            // lli: two bare descriptor numbers.
            [read, write] => Some(Self::Fds {
                read: read.parse().ok()?,
                write: write.parse().ok()?,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<Launch> {
        Launch::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn launch_conventions() {
        assert_eq!(
            parse(&["filedescs=3,6"]),
            Some(Launch::Fds { read: 3, write: 6 })
        );
        assert_eq!(parse(&["7", "8"]), Some(Launch::Fds { read: 7, write: 8 }));
        assert_eq!(
            parse(&["listen=127.0.0.1:0"]),
            Some(Launch::Listen("127.0.0.1:0".to_owned()))
        );
        for bad in [
            &[][..],
            &["filedescs=3"],
            &["filedescs=a,b"],
            &["listen="],
            &["3"],
            &["3", "x"],
            &["1", "2", "3"],
            &["test-jitloadergdb"],
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
