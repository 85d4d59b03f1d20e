//! Labelled rows the classifier tests train small heads on (billing and chitchat).

/// 8 billing and 8 chitchat utterances.
pub const TRAINING: [(&str, &str); 16] = [
    ("I was charged twice for one order", "billing"),
    ("refund my last payment please", "billing"),
    ("why is my invoice higher this month", "billing"),
    ("my card payment was declined", "billing"),
    ("cancel the subscription fee", "billing"),
    ("I want my money back", "billing"),
    ("the bill shows a charge I don't recognise", "billing"),
    ("how do I update my payment method", "billing"),
    ("hello, how are you?", "chitchat"),
    ("tell me a joke", "chitchat"),
    ("good morning!", "chitchat"),
    ("what's your favourite colour", "chitchat"),
    ("thanks, have a nice day", "chitchat"),
    ("hey there", "chitchat"),
    ("nice to meet you", "chitchat"),
    ("how was your weekend", "chitchat"),
];
