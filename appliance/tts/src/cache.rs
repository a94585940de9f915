//! A bounded in-memory cache of synthesized fixed phrases (greeting, "please
//! hold", goodbye), so the words a caller hears first cost no synthesis.
//!
//! Keyed by voice, output rate and exact text; bounded by a byte budget with
//! least-recently-used eviction. Phrases are few and short, so eviction scans
//! the entries rather than keeping an ordered index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use vb_audio::Pcm;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    voice: String,
    rate: u32,
    text: String,
}

#[derive(Debug)]
struct Entry {
    pcm: Pcm,
    last_used: u64,
}

/// Counters describing the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to synthesize.
    pub misses: u64,
    /// Entries evicted to stay within the budget.
    pub evictions: u64,
    /// Phrases held now.
    pub entries: usize,
    /// Bytes of audio held now.
    pub bytes: usize,
}

/// A phrase cache that several [`crate::Tts`] instances share (one per
/// concurrent call in the daemon), so a phrase synthesized for one call is
/// ready for every other. Cloning shares; the lock is held for lookups and
/// inserts only, never while synthesizing.
#[derive(Debug, Clone)]
pub struct SharedPhraseCache(Arc<Mutex<PhraseCache>>);

impl SharedPhraseCache {
    /// A new cache holding at most `budget_bytes` of audio samples.
    pub fn new(budget_bytes: usize) -> Self {
        Self(Arc::new(Mutex::new(PhraseCache::new(budget_bytes))))
    }

    /// The cache, locked (a panic elsewhere leaves it usable: it holds
    /// finished audio only).
    pub fn lock(&self) -> MutexGuard<'_, PhraseCache> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The phrase cache.
#[derive(Debug)]
pub struct PhraseCache {
    budget: usize,
    entries: HashMap<Key, Entry>,
    bytes: usize,
    clock: u64,
    stats: CacheStats,
}

fn size_of(pcm: &Pcm) -> usize {
    pcm.samples.len() * std::mem::size_of::<f32>()
}

impl PhraseCache {
    /// Default budget: 8 MiB holds about 4 minutes of 8 kHz audio or 1.5
    /// minutes at 22.05 kHz, far more than a robot's fixed phrases.
    pub const DEFAULT_BUDGET_BYTES: usize = 8 << 20;

    /// A cache holding at most `budget_bytes` of audio samples.
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            budget: budget_bytes,
            entries: HashMap::new(),
            bytes: 0,
            clock: 0,
            stats: CacheStats::default(),
        }
    }

    /// The cached audio for (`voice`, `rate`, `text`), counting a hit or a miss.
    pub fn get(&mut self, voice: &str, rate: u32, text: &str) -> Option<Pcm> {
        self.clock += 1;
        let key = Key {
            voice: voice.to_string(),
            rate,
            text: text.to_string(),
        };
        match self.entries.get_mut(&key) {
            Some(entry) => {
                entry.last_used = self.clock;
                self.stats.hits += 1;
                Some(entry.pcm.clone())
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Whether (`voice`, `rate`, `text`) is cached, without counting a hit
    /// or a miss or refreshing its age.
    pub fn contains(&self, voice: &str, rate: u32, text: &str) -> bool {
        self.entries.contains_key(&Key {
            voice: voice.to_string(),
            rate,
            text: text.to_string(),
        })
    }

    /// Stores audio, evicting the least recently used phrases to make room.
    /// Audio larger than the whole budget is not stored.
    pub fn insert(&mut self, voice: &str, rate: u32, text: &str, pcm: Pcm) {
        let size = size_of(&pcm);
        if size > self.budget {
            return;
        }
        self.clock += 1;
        let key = Key {
            voice: voice.to_string(),
            rate,
            text: text.to_string(),
        };
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= size_of(&old.pcm);
        }
        while self.bytes + size > self.budget {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(evicted) = self.entries.remove(&oldest) {
                self.bytes -= size_of(&evicted.pcm);
                self.stats.evictions += 1;
            }
        }
        self.bytes += size;
        self.entries.insert(
            key,
            Entry {
                pcm,
                last_used: self.clock,
            },
        );
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            bytes: self.bytes,
            ..self.stats
        }
    }

    /// Drops every entry (counters are kept).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(n: usize, v: f32) -> Pcm {
        Pcm::new(8000, vec![v; n])
    }

    #[test]
    fn a_shared_cache_serves_every_holder() {
        let a = SharedPhraseCache::new(1 << 20);
        let b = a.clone();
        a.lock().insert("joe", 8000, "Hello", pcm(10, 0.5));
        assert_eq!(b.lock().get("joe", 8000, "Hello"), Some(pcm(10, 0.5)));
        let stats = a.lock().stats();
        assert_eq!((stats.hits, stats.entries), (1, 1));
        // A separate cache is separate.
        assert!(SharedPhraseCache::new(1 << 20)
            .lock()
            .get("joe", 8000, "Hello")
            .is_none());
    }

    #[test]
    fn counts_hits_and_misses_and_keys_on_voice_rate_and_text() {
        let mut cache = PhraseCache::new(1 << 20);
        assert!(cache.get("joe", 8000, "Hello").is_none());
        cache.insert("joe", 8000, "Hello", pcm(10, 0.5));
        assert_eq!(
            cache.get("joe", 8000, "Hello").unwrap().samples,
            vec![0.5; 10]
        );
        assert!(cache.get("joe", 16000, "Hello").is_none());
        assert!(cache.get("espeak-ru", 8000, "Hello").is_none());
        assert!(cache.get("joe", 8000, "Hello!").is_none());
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.entries, s.bytes), (1, 4, 1, 40));
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        // Room for exactly two 100-sample phrases.
        let mut cache = PhraseCache::new(800);
        cache.insert("v", 8000, "a", pcm(100, 0.1));
        cache.insert("v", 8000, "b", pcm(100, 0.2));
        assert!(cache.get("v", 8000, "a").is_some()); // "b" is now the oldest
        cache.insert("v", 8000, "c", pcm(100, 0.3));
        assert!(cache.get("v", 8000, "b").is_none());
        assert!(cache.get("v", 8000, "a").is_some());
        assert!(cache.get("v", 8000, "c").is_some());
        let s = cache.stats();
        assert_eq!((s.entries, s.bytes, s.evictions), (2, 800, 1));
    }

    #[test]
    fn refuses_audio_over_the_whole_budget_and_replaces_same_key() {
        let mut cache = PhraseCache::new(100);
        cache.insert("v", 8000, "long", pcm(26, 0.0));
        assert_eq!(cache.stats().entries, 0);
        cache.insert("v", 8000, "x", pcm(10, 0.1));
        cache.insert("v", 8000, "x", pcm(20, 0.2));
        let s = cache.stats();
        assert_eq!((s.entries, s.bytes), (1, 80));
        cache.clear();
        assert_eq!(cache.stats().bytes, 0);
    }
}
