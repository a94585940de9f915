//! Bounded conversation memory: the system prompt plus the most recent
//! turns that fit a turn and character budget (characters stand in for
//! tokens: about four per token for English, fewer for Russian).

use serde::Serialize;
use std::collections::VecDeque;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The caller.
    User,
    /// The robot.
    Assistant,
}

/// One chat message as the API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Who.
    pub role: Role,
    /// What.
    pub content: String,
}

/// The budget of a [`Conversation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Most caller and robot messages kept.
    pub max_messages: usize,
    /// Most characters in kept messages (the system prompt not counted).
    pub max_chars: usize,
}

impl Default for MemoryBudget {
    fn default() -> MemoryBudget {
        MemoryBudget {
            max_messages: 16,
            max_chars: 6000,
        }
    }
}

/// One call's conversation, oldest messages dropped first.
#[derive(Debug, Clone)]
pub struct Conversation {
    budget: MemoryBudget,
    messages: VecDeque<Message>,
    chars: usize,
}

impl Conversation {
    /// An empty conversation with `budget`.
    pub fn new(budget: MemoryBudget) -> Conversation {
        Conversation {
            budget,
            messages: VecDeque::new(),
            chars: 0,
        }
    }

    /// Adds a message, then drops the oldest until the budget holds. A
    /// single message longer than the whole budget keeps only its end.
    pub fn push(&mut self, role: Role, content: &str) {
        let mut content = content.trim().to_owned();
        let n = content.chars().count();
        if n > self.budget.max_chars {
            content = content.chars().skip(n - self.budget.max_chars).collect();
        }
        self.chars += content.chars().count();
        self.messages.push_back(Message { role, content });
        while self.messages.len() > self.budget.max_messages.max(1)
            || self.chars > self.budget.max_chars
        {
            match self.messages.pop_front() {
                Some(m) => self.chars -= m.content.chars().count(),
                None => break,
            }
        }
        // A history that opens with the robot's words confuses some chat
        // templates: start at a caller message.
        while self.messages.front().is_some_and(|m| m.role != Role::User) && self.messages.len() > 1
        {
            if let Some(m) = self.messages.pop_front() {
                self.chars -= m.content.chars().count();
            }
        }
    }

    /// The messages to send: `system` first, then the kept history.
    pub fn messages(&self, system: &str) -> Vec<Message> {
        std::iter::once(Message {
            role: Role::System,
            content: system.to_owned(),
        })
        .chain(self.messages.iter().cloned())
        .collect()
    }

    /// Kept messages (without the system prompt).
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Characters kept.
    pub fn chars(&self) -> usize {
        self.chars
    }

    /// The kept history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Message> {
        self.messages.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_within_budget_and_starts_with_the_caller() {
        let mut c = Conversation::new(MemoryBudget {
            max_messages: 4,
            max_chars: 1000,
        });
        for i in 0..10 {
            c.push(Role::User, &format!("u{i}"));
            c.push(Role::Assistant, &format!("a{i}"));
        }
        assert_eq!(c.len(), 4);
        let m = c.messages("sys");
        assert_eq!(m[0].role, Role::System);
        assert_eq!(m[1].content, "u8");
        assert_eq!(m[4].content, "a9");
    }

    #[test]
    fn char_budget_and_overlong_message() {
        let mut c = Conversation::new(MemoryBudget {
            max_messages: 100,
            max_chars: 10,
        });
        c.push(Role::User, "12345");
        c.push(Role::Assistant, "678");
        c.push(Role::User, "abcd");
        assert!(c.chars() <= 10);
        assert_eq!(c.history().next().unwrap().content, "abcd");
        c.push(Role::User, &"x".repeat(50));
        assert_eq!(c.len(), 1);
        assert_eq!(c.chars(), 10);
    }
}
