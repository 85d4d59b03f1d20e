//! Cheap prompt-length estimation.

/// Approximate token count of `text`: one token per four characters,
/// rounded up (`0` for empty text). Good enough to compare against policy
/// thresholds without loading a tokenizer.
pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count();
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::estimate_tokens;

    #[test]
    fn rounds_up_by_characters() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("a"), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens(&"x".repeat(12_000)), 3000);
        // Characters, not bytes: four 3-byte characters are one token.
        assert_eq!(estimate_tokens("日本語字"), 1);
    }
}
