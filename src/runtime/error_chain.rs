//! An error with its causes on one line, for messages an operator reads:
//! libraries often say only "error sending request" or "error performing
//! TLS handshake", and the cause says which certificate check failed.

/// `outer: inner: …`, skipping a cause whose text the line already holds.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Layer(&'static str, #[source] Option<Box<Layer>>);

    #[test]
    fn causes_follow_the_error_once_each() {
        let inner = Layer("certificate unknown", None);
        let middle = Layer("handshake failed", Some(Box::new(inner)));
        let outer = Layer("error sending request", Some(Box::new(middle)));
        assert_eq!(
            with_causes(&outer),
            "error sending request: handshake failed: certificate unknown"
        );
        let repeated = Layer(
            "handshake failed: certificate unknown",
            Some(Box::new(Layer("certificate unknown", None))),
        );
        assert_eq!(
            with_causes(&repeated),
            "handshake failed: certificate unknown"
        );
    }
}
