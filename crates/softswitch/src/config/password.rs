//! The SIP password policy, and the generator for passwords nobody wrote.
//!
//! Weak SIP passwords are how PBXs get hijacked for toll fraud: scanners try
//! the extension number, short digit strings and keyboard runs. The policy
//! refuses those; causes never quote the password, since they end up in logs.

use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 12;
/// Length of generated passwords.
pub const GENERATED_LEN: usize = 20;
/// Identical or sequential characters in a row that count as a run.
const RUN_LEN: usize = 4;

/// What is wrong with `password` for extension `number`, or `None` when it
/// meets the policy: at least 12 characters, 3 of the 4 classes (lower,
/// upper, digit, symbol), not containing the extension number, no run of
/// 4 identical or sequential characters, not a repeated short pattern.
pub fn weakness(password: &str, number: &str) -> Option<String> {
    let mut problems = Vec::new();
    let len = password.chars().count();
    if len < MIN_LEN {
        problems.push(format!("{len} characters, need at least {MIN_LEN}"));
    }
    let classes = classes(password);
    if classes < 3 {
        problems.push(format!(
            "uses {classes} of the 4 character classes (lower case, upper case, digit, symbol), need 3"
        ));
    }
    if !number.is_empty() && password.contains(number) {
        problems.push("contains the extension number".to_owned());
    }
    if has_repeat_run(password) {
        problems.push(format!(
            "repeats one character {RUN_LEN} or more times in a row"
        ));
    }
    if has_sequence_run(password) {
        problems.push(format!(
            "contains a sequence of {RUN_LEN} or more characters like 1234 or abcd"
        ));
    }
    if len >= 2 && is_repeated_pattern(password) {
        problems.push("is one short pattern repeated".to_owned());
    }
    if problems.is_empty() {
        None
    } else {
        Some(problems.join("; "))
    }
}

/// A random password that meets the policy for `number`: 20 letters and
/// digits from the operating system's generator.
pub fn generate(number: &str) -> String {
    loop {
        let candidate = Alphanumeric.sample_string(&mut OsRng, GENERATED_LEN);
        // Rarely a draw lacks a class or holds a run; draw again.
        if weakness(&candidate, number).is_none() {
            return candidate;
        }
    }
}

fn classes(password: &str) -> usize {
    let lower = password.chars().any(|c| c.is_lowercase());
    let upper = password.chars().any(|c| c.is_uppercase());
    let digit = password.chars().any(|c| c.is_ascii_digit());
    let symbol = password.chars().any(|c| !c.is_alphanumeric());
    [lower, upper, digit, symbol]
        .into_iter()
        .filter(|&b| b)
        .count()
}

fn has_repeat_run(password: &str) -> bool {
    let chars: Vec<char> = password.chars().collect();
    chars.windows(RUN_LEN).any(|w| w.iter().all(|&c| c == w[0]))
}

/// Ascending or descending letters or digits: `1234`, `dcba`, `WXYZ`.
fn has_sequence_run(password: &str) -> bool {
    let lowered: Vec<char> = password.chars().map(|c| c.to_ascii_lowercase()).collect();
    lowered.windows(RUN_LEN).any(|w| {
        let alnum = w.iter().all(|c| c.is_ascii_alphanumeric());
        let same_kind =
            w.iter().all(|c| c.is_ascii_digit()) || w.iter().all(|c| c.is_ascii_alphabetic());
        let step = |d: i32| w.windows(2).all(|p| p[1] as i32 - p[0] as i32 == d);
        alnum && same_kind && (step(1) || step(-1))
    })
}

/// The whole password is a shorter unit repeated: `Ab1!Ab1!Ab1!`.
fn is_repeated_pattern(password: &str) -> bool {
    let chars: Vec<char> = password.chars().collect();
    let n = chars.len();
    (1..=n / 2).any(|unit| {
        let chunks = chars.chunks_exact(unit);
        chunks.remainder().is_empty() && chunks.clone().all(|c| c == &chars[..unit])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strong_passwords_pass() {
        assert_eq!(weakness("Tr0ub4dor&3x!", "1001"), None);
        assert_eq!(weakness("correct-Horse-battery", "1001"), None);
        assert_eq!(weakness("k7Qm2vXp9LwR", "1001"), None);
    }

    #[test]
    fn short_password_says_length() {
        let cause = weakness("Ab1!x", "1001").unwrap();
        assert!(cause.contains("5 characters, need at least 12"), "{cause}");
    }

    #[test]
    fn too_few_classes() {
        let cause = weakness("alllowercaseletters", "1001").unwrap();
        assert!(
            cause.contains("uses 1 of the 4 character classes"),
            "{cause}"
        );
        let cause = weakness("lowerandDIGITS", "1001").unwrap();
        assert!(cause.contains("uses 2 of the 4"), "{cause}");
    }

    #[test]
    fn extension_number_refused() {
        let cause = weakness("Secret-1001-pass", "1001").unwrap();
        assert!(cause.contains("contains the extension number"), "{cause}");
    }

    #[test]
    fn runs_and_repeats_refused() {
        let cause = weakness("Xy!123456789q", "1001").unwrap();
        assert!(cause.contains("sequence"), "{cause}");
        let cause = weakness("Xy!zaaaaQ7w!", "1001").unwrap();
        assert!(cause.contains("repeats one character"), "{cause}");
        let cause = weakness("Ab1!Ab1!Ab1!", "1001").unwrap();
        assert!(cause.contains("one short pattern repeated"), "{cause}");
        let cause = weakness("Pass-DCBA-word9", "1001").unwrap();
        assert!(cause.contains("sequence"), "{cause}");
    }

    #[test]
    fn several_problems_are_all_named() {
        let cause = weakness("1001", "1001").unwrap();
        assert!(cause.contains("4 characters"), "{cause}");
        assert!(cause.contains("classes"), "{cause}");
        assert!(cause.contains("extension number"), "{cause}");
    }

    #[test]
    fn cause_never_quotes_the_password() {
        let cause = weakness("hunter2hunter2", "1001").unwrap();
        assert!(!cause.contains("hunter"), "{cause}");
    }

    #[test]
    fn generated_passwords_meet_the_policy_and_differ() {
        let a = generate("1001");
        let b = generate("1001");
        assert_eq!(a.chars().count(), GENERATED_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(weakness(&a, "1001"), None);
        assert_ne!(a, b);
    }
}
