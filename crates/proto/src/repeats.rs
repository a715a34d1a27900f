//! Saying a repeated message once: a loop that retries every second must not write the same
//! line 86,400 times a day. The first occurrence is said, a changed message is said, and a
//! message that keeps coming is said again with its count every `every` seconds. Time is passed
//! in.

/// What to do with a message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    /// Say it (the first time, or it changed).
    New,
    /// Say it again, with how many times it came since it was last said.
    Again(u64),
    /// Keep quiet (say it at debug level at most).
    Quiet,
}

/// The state of one repeated message.
#[derive(Debug, Clone, Default)]
pub struct Repeats {
    last: Option<String>,
    unsaid: u64,
    said_at: u64,
}

impl Repeats {
    /// `msg` happened at `now` (seconds): whether to say it, given `every` seconds between
    /// repeats.
    pub fn note(&mut self, msg: &str, now: u64, every: u64) -> Say {
        if self.last.as_deref() != Some(msg) {
            self.last = Some(msg.to_owned());
            self.unsaid = 0;
            self.said_at = now;
            return Say::New;
        }
        self.unsaid += 1;
        if now.saturating_sub(self.said_at) >= every {
            let n = self.unsaid;
            self.unsaid = 0;
            self.said_at = now;
            return Say::Again(n);
        }
        Say::Quiet
    }

    /// The condition is over: the next occurrence is news again.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_repeated_every_second_for_a_day_is_said_once_a_minute() {
        let mut r = Repeats::default();
        let mut said = 0;
        let mut counted = 0;
        for now in 0..86_400 {
            match r.note("Address already in use", now, 60) {
                Say::New => said += 1,
                Say::Again(n) => {
                    said += 1;
                    counted += n;
                }
                Say::Quiet => {}
            }
        }
        assert_eq!(said, 1440, "once, then once a minute");
        // The first is said as news; the repeats are counted in the lines that say them again,
        // but for the 59 of the last, unfinished minute.
        assert_eq!(1 + counted + 59, 86_400, "every occurrence counted");
    }

    #[test]
    fn a_changed_message_is_said_at_once_and_clear_starts_over() {
        let mut r = Repeats::default();
        assert_eq!(r.note("a", 0, 60), Say::New);
        assert_eq!(r.note("a", 1, 60), Say::Quiet);
        assert_eq!(r.note("b", 2, 60), Say::New);
        r.clear();
        assert_eq!(r.note("b", 3, 60), Say::New);
    }
}
