//! The user's spending caps, per UTC day and in total, kept in `data_dir/budget.json`.
//!
//! A session can never pay more than its deposit, so the caps hold exactly if every deposit is
//! counted in full from the moment its session opens until the session settles, and only what
//! it paid after that. A new session's deposit is cut to the room left under both caps; when
//! that room is below the market's minimum deposit, the client is capped: no new session, and
//! no new connections until the room comes back (the next UTC day, or a settled session's
//! refund).
//!
//! No I/O but the file; time is passed in (unix seconds).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use alloy::primitives::B256;
use serde::{Deserialize, Serialize};

use crate::state::StateError;

const SECS_PER_DAY: u64 = 86_400;
/// Settled days kept for the per-day cap (the total keeps its own sum).
const DAYS_KEPT: u64 = 7;

/// The caps, in wei of the market's token. `None`: no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub per_day: Option<u128>,
    pub total: Option<u128>,
}

/// Which cap left no room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Capped {
    #[error("spending cap reached: {} of today's {} spent or locked in sessions (`max_spend_per_day`); new connections are refused until {} UTC, or until sessions settle and return what they did not use", tok(spent), tok(cap), resets)]
    Day { spent: u128, cap: u128, resets: String },
    #[error("total spending cap reached: {} of {} spent or locked in sessions (`max_spend_total`); new connections are refused until the cap is raised, or sessions settle and return what they did not use", tok(spent), tok(cap))]
    Total { spent: u128, cap: u128 },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct Open {
    /// UTC day the session opened (unix seconds / 86,400).
    day: u64,
    #[serde(with = "dec")]
    deposit: u128,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Book {
    /// Sessions not settled yet: counted at their whole deposit.
    open: BTreeMap<B256, Open>,
    /// What settled sessions paid, by the day they opened (the last [`DAYS_KEPT`] days).
    #[serde(with = "dec_map")]
    settled_by_day: BTreeMap<u64, u128>,
    /// What every settled session ever paid.
    #[serde(with = "dec")]
    settled_total: u128,
}

/// What [`Budget::summary`] reports (amounts in wei).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spending {
    /// Paid by settled sessions, in total.
    pub paid_total: u128,
    /// Deposits of sessions not settled yet (the most they can still pay).
    pub locked: u128,
    /// Paid or locked by sessions opened today (UTC).
    pub today: u128,
}

/// The caps and the book of what was spent against them.
#[derive(Debug)]
pub struct Budget {
    caps: Caps,
    path: PathBuf,
    book: Book,
}

impl Budget {
    /// Loads the book under `data_dir` (an empty one if there is none yet).
    ///
    /// # Errors
    /// An unreadable or corrupt file: it is not replaced by an empty book, which would forget
    /// what was spent.
    pub fn load(data_dir: &Path, caps: Caps) -> Result<Self, StateError> {
        let path = data_dir.join("budget.json");
        let book = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StateError::Corrupt { path: path.clone(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Book::default(),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        Ok(Self { caps, path, book })
    }

    #[must_use]
    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// Spent or locked by sessions opened on `day`.
    fn on_day(&self, day: u64) -> u128 {
        let open: u128 = self.book.open.values().filter(|o| o.day == day).map(|o| o.deposit).sum();
        open.saturating_add(self.book.settled_by_day.get(&day).copied().unwrap_or(0))
    }

    fn locked(&self) -> u128 {
        self.book.open.values().map(|o| o.deposit).sum()
    }

    /// What was spent and what is locked, at `now`.
    #[must_use]
    pub fn summary(&self, now: u64) -> Spending {
        Spending { paid_total: self.book.settled_total, locked: self.locked(), today: self.on_day(now / SECS_PER_DAY) }
    }

    /// The deposit a new session may have at `now`: `wanted`, cut to the room under both caps.
    ///
    /// # Errors
    /// [`Capped`] when the room is below `min_deposit` (the market's floor).
    pub fn deposit_for(&self, wanted: u128, min_deposit: u128, now: u64) -> Result<u128, Capped> {
        let day = now / SECS_PER_DAY;
        let mut room = wanted;
        if let Some(cap) = self.caps.total {
            let spent = self.book.settled_total.saturating_add(self.locked());
            let left = cap.saturating_sub(spent);
            if left < min_deposit.max(1) {
                return Err(Capped::Total { spent, cap });
            }
            room = room.min(left);
        }
        if let Some(cap) = self.caps.per_day {
            let spent = self.on_day(day);
            let left = cap.saturating_sub(spent);
            if left < min_deposit.max(1) {
                return Err(Capped::Day { spent, cap, resets: next_midnight(day) });
            }
            room = room.min(left);
        }
        Ok(room)
    }

    /// Counts a session's whole deposit from its opening (idempotent: a session already in the
    /// book keeps its entry). Written to disk before it returns.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn opened(&mut self, id: B256, deposit: u128, opened_at: u64) -> Result<(), StateError> {
        if self.book.open.contains_key(&id) {
            return Ok(());
        }
        self.book.open.insert(id, Open { day: opened_at / SECS_PER_DAY, deposit });
        self.save()
    }

    /// A session settled having paid `paid` (at most its deposit): the rest is free again.
    /// Unknown sessions are ignored.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn settled(&mut self, id: &B256, paid: u128, now: u64) -> Result<(), StateError> {
        let Some(o) = self.book.open.remove(id) else { return Ok(()) };
        let paid = paid.min(o.deposit);
        self.book.settled_total = self.book.settled_total.saturating_add(paid);
        let e = self.book.settled_by_day.entry(o.day).or_insert(0);
        *e = e.saturating_add(paid);
        let oldest = (now / SECS_PER_DAY).saturating_sub(DAYS_KEPT);
        self.book.settled_by_day.retain(|d, _| *d >= oldest);
        self.save()
    }

    fn save(&self) -> Result<(), StateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        let text = serde_json::to_vec_pretty(&self.book)
            .map_err(|e| StateError::Corrupt { path: self.path.clone(), reason: e.to_string() })?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&text).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        Ok(())
    }
}

fn tok(wei: &u128) -> String {
    wirepact_proto::token_text(alloy::primitives::U256::from(*wei))
}

fn next_midnight(day: u64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm, integer only).
    let z = i64::try_from(day + 1).unwrap_or(i64::MAX) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} 00:00")
}

/// u128 as a decimal string (JSON numbers lose precision past 2^53).
mod dec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

mod dec_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub fn serialize<S: Serializer>(v: &BTreeMap<u64, u128>, s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>().serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u64, u128>, D::Error> {
        let m = BTreeMap::<String, String>::deserialize(d)?;
        m.into_iter()
            .map(|(k, v)| {
                Ok((k.parse().map_err(serde::de::Error::custom)?, v.parse().map_err(serde::de::Error::custom)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: u128 = 1_000_000_000_000_000_000;
    const DAY: u64 = 20_000 * SECS_PER_DAY;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wirepact-budget-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn id(n: u8) -> B256 {
        B256::repeat_byte(n)
    }

    #[test]
    fn a_deposit_is_cut_to_the_room_left_and_refused_below_the_market_floor() {
        let dir = tmp("room");
        let caps = Caps { per_day: Some(10 * TOKEN), total: None };
        let mut b = Budget::load(&dir, caps).expect("load");
        assert_eq!(b.deposit_for(4 * TOKEN, TOKEN, DAY), Ok(4 * TOKEN));
        b.opened(id(1), 4 * TOKEN, DAY).expect("open");
        b.opened(id(2), 4 * TOKEN, DAY + 10).expect("open");
        // 8 locked: the next session gets the 2 left, not its 4.
        assert_eq!(b.deposit_for(4 * TOKEN, TOKEN, DAY + 20), Ok(2 * TOKEN));
        b.opened(id(3), 2 * TOKEN, DAY + 20).expect("open");
        let err = b.deposit_for(4 * TOKEN, TOKEN, DAY + 30).expect_err("capped");
        assert_eq!(err, Capped::Day { spent: 10 * TOKEN, cap: 10 * TOKEN, resets: "2024-10-05 00:00".into() });
        assert!(err.to_string().contains("10 tokens of today's 10 tokens"), "{err}");
        // A settled session frees what it did not pay.
        b.settled(&id(1), TOKEN + 7, DAY + 40).expect("settle");
        assert_eq!(b.deposit_for(4 * TOKEN, TOKEN, DAY + 50), Ok(3 * TOKEN - 7));
        // The next day has its own room; what is still locked counts on the day it opened.
        assert_eq!(b.deposit_for(4 * TOKEN, TOKEN, DAY + SECS_PER_DAY), Ok(4 * TOKEN));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_total_cap_counts_every_day_and_survives_a_restart() {
        let dir = tmp("total");
        let caps = Caps { per_day: None, total: Some(5 * TOKEN) };
        let mut b = Budget::load(&dir, caps).expect("load");
        b.opened(id(1), 3 * TOKEN, DAY).expect("open");
        b.settled(&id(1), 3 * TOKEN, DAY + 5).expect("settle");
        // A week later, after a restart, the 3 paid still count.
        let later = DAY + 8 * SECS_PER_DAY;
        let mut b = Budget::load(&dir, caps).expect("reload");
        assert_eq!(b.deposit_for(5 * TOKEN, TOKEN, later), Ok(2 * TOKEN));
        b.opened(id(2), 2 * TOKEN, later).expect("open");
        assert!(
            matches!(b.deposit_for(TOKEN, TOKEN, later), Err(Capped::Total { spent, cap }) if spent == 5 * TOKEN && cap == 5 * TOKEN)
        );
        assert_eq!(b.summary(later), Spending { paid_total: 3 * TOKEN, locked: 2 * TOKEN, today: 2 * TOKEN });
        // Opening twice (a restart that finds the session file again) counts once.
        b.opened(id(2), 2 * TOKEN, later).expect("again");
        assert_eq!(b.summary(later).locked, 2 * TOKEN);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_book_is_an_error_not_a_fresh_start() {
        let dir = tmp("corrupt");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("budget.json"), b"{ not json").expect("write");
        let err = Budget::load(&dir, Caps::default()).expect_err("corrupt");
        assert!(err.to_string().contains("budget.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_caps_the_deposit_is_what_was_asked() {
        let b = Budget::load(&tmp("none"), Caps::default()).expect("load");
        assert_eq!(b.deposit_for(7, 5, DAY), Ok(7));
    }
}
