//! An error with the chain of its causes, for a message. The crate's wrapper errors
//! (`Error::Queue`, `Error::Io`, ...) say what failed and leave why to `source()`,
//! so printing only the outer one would hide the reason. Included by the examples
//! (`mod report;`).

use std::error::Error;
use std::fmt;

/// Displays `err: its source: that one's source ...`.
pub struct Report<'a>(pub &'a dyn Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
