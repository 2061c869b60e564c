//! What kind of failure an engine error is, told by its type (never by its
//! text): a mistake in the query, a limit reached, a cancellation, or a fault
//! inside vitals. The one place the kind maps to an HTTP status, a CLI exit
//! code and a log level; the server maps it once more to a gRPC code.

use std::error::Error;

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use crate::functions::guard::ResultTooLarge;

/// The kinds of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The query or its arguments are wrong: the message says what to change.
    User,
    /// A limit was reached (memory, a result's size).
    Limit,
    /// The caller or the server stopped it.
    Cancelled,
    /// A fault inside vitals or its storage: details go to the log, not the client.
    Internal,
}

impl ErrorKind {
    /// The HTTP status of the web API.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::User => 400,
            ErrorKind::Limit => 429,
            ErrorKind::Cancelled => 499,
            ErrorKind::Internal => 500,
        }
    }

    /// The exit code of the command line.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::User => 2,
            ErrorKind::Limit => 3,
            ErrorKind::Cancelled => 130,
            ErrorKind::Internal => 1,
        }
    }

    /// How loudly the server logs it.
    pub fn log_level(self) -> tracing::Level {
        match self {
            ErrorKind::Internal => tracing::Level::ERROR,
            ErrorKind::Limit => tracing::Level::WARN,
            ErrorKind::User | ErrorKind::Cancelled => tracing::Level::INFO,
        }
    }
}

/// The kind of an arrow error that is the query's doing.
fn arrow_kind(e: &ArrowError) -> Option<ErrorKind> {
    match e {
        ArrowError::DivideByZero
        | ArrowError::ArithmeticOverflow(_)
        | ArrowError::CastError(_)
        | ArrowError::ComputeError(_)
        | ArrowError::InvalidArgumentError(_)
        | ArrowError::ParseError(_)
        | ArrowError::NotYetImplemented(_) => Some(ErrorKind::User),
        _ => None,
    }
}

/// The kind of an error, from the first cause in its chain that tells.
pub fn kind_of(e: &DataFusionError) -> ErrorKind {
    let mut cause: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if err.downcast_ref::<ResultTooLarge>().is_some() {
            return ErrorKind::Limit;
        }
        if let Some(a) = err.downcast_ref::<ArrowError>() {
            if let Some(k) = arrow_kind(a) {
                return k;
            }
        }
        if let Some(d) = err.downcast_ref::<DataFusionError>() {
            match d {
                DataFusionError::ResourcesExhausted(_) => return ErrorKind::Limit,
                DataFusionError::Plan(_)
                | DataFusionError::SQL(..)
                | DataFusionError::SchemaError(..)
                | DataFusionError::NotImplemented(_)
                | DataFusionError::Configuration(_)
                | DataFusionError::Execution(_) => return ErrorKind::User,
                DataFusionError::Internal(_) => return ErrorKind::Internal,
                _ => {}
            }
        }
        cause = err.source();
    }
    ErrorKind::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_cause_not_the_text() {
        let wrapped = |a: ArrowError| DataFusionError::Context("reading".into(), Box::new(DataFusionError::ArrowError(Box::new(a), None)));
        assert_eq!(kind_of(&wrapped(ArrowError::DivideByZero)), ErrorKind::User);
        assert_eq!(kind_of(&wrapped(ArrowError::CastError("x".into()))), ErrorKind::User);
        // The same arrow error inside a Parquet reader's external error.
        let deep = DataFusionError::External(Box::new(parquet::errors::ParquetError::External(Box::new(ArrowError::DivideByZero))));
        assert_eq!(kind_of(&deep), ErrorKind::User);
        assert_eq!(kind_of(&wrapped(ArrowError::IoError("disk".into(), std::io::Error::other("x")))), ErrorKind::Internal);
        assert_eq!(kind_of(&DataFusionError::External(Box::new(ResultTooLarge("big".into())))), ErrorKind::Limit);
        assert_eq!(kind_of(&DataFusionError::ResourcesExhausted("pool".into())), ErrorKind::Limit);
        assert_eq!(kind_of(&DataFusionError::Internal("cancelled".into())), ErrorKind::Internal);
        assert_eq!(kind_of(&DataFusionError::Plan("no such column".into())), ErrorKind::User);
    }
}
