//! Reading request bodies with a hard size limit.

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Limited};

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit (HTTP 413).
    TooLarge,
    /// The connection failed while reading (HTTP 400).
    Read,
}

/// Reads at most `limit` bytes, refusing a body that declares or turns out to be larger.
pub async fn read_limited<B>(
    body: B,
    declared_len: Option<u64>,
    limit: usize,
) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if declared_len.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Read),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn limits_are_enforced_whether_declared_or_not() {
        let body = || Full::new(Bytes::from(vec![b'x'; 100]));
        assert_eq!(read_limited(body(), None, 100).await.unwrap().len(), 100);
        assert_eq!(
            read_limited(body(), None, 99).await.unwrap_err(),
            BodyError::TooLarge
        );
        assert_eq!(
            read_limited(body(), Some(1_000_000), 200)
                .await
                .unwrap_err(),
            BodyError::TooLarge
        );
    }
}
