//! The stats a store holds, by name, laid out for many clusters.
//!
//! A component creates its stats under one prefix per instance (`define_stats!`):
//! a cluster has some sixty named `cluster.<name>.<stat>`, so with 10,000 clusters
//! a map from full name to stat would hold 600,000 names and as many tree entries.
//! Here a name is split after its last dot: the part up to there (`cluster.echo.`)
//! names a *group*, found by hash, and the rest (`upstream_rq_total`) is a *word*,
//! kept once whatever the number of groups using it and named in a group by its
//! index. A group keeps its stats in vectors sorted by word. A `define_stats!`
//! struct's words are sorted (and given their indexes) once per process, so a new
//! instance's group is filled in order; any other stat is a hash lookup and a
//! binary search over a few dozen words. A stat costs its 16-byte slot.
//!
//! Listing (admin only) joins and sorts the names, as Envoy's `/stats` orders them.
//!
//! With `deferred_stat_options.enable_deferred_creation_stats`, some of a group's
//! stats (a cluster's traffic stats) exist from the start, so that their owner
//! holds them as usual, but are not listed until their owner first uses them
//! (`defer_until_used`): what Envoy shows, which creates them at that moment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::config::StatsConfig;
use super::histogram::Histogram;
use super::store::{Counter, Gauge, TextReadout};
use crate::common::fnv::FnvBuildHasher;

/// Every stat of a store.
#[derive(Debug)]
pub struct Stats {
    /// Boxed: a cluster makes three groups, and the table's spare buckets
    /// would each hold a whole group (~100 bytes) where a pointer does.
    groups: HashMap<Arc<str>, Box<Group>, ByName>,
    /// Every word, by its index (a slot's `WordId`).
    words: Vec<Arc<str>>,
    word_ids: HashMap<Arc<str>, WordId, ByName>,
    /// This table among the process's, for the word indexes `Words` keep.
    id: u64,
    /// The bootstrap's `stats_config`: which names are kept, how they are tagged.
    config: StatsConfig,
    /// `deferred_stat_options.enable_deferred_creation_stats`.
    deferred_creation: bool,
    /// Text readouts (one per xDS subscription: with 10,000 EDS clusters,
    /// 10,000), by group and word as the other stats, the group's name
    /// shared with its entry in `groups` where it has one: ~50 bytes a
    /// readout, where a map by full name took ~170.
    text_readouts: HashMap<(Arc<str>, WordId), Arc<TextReadout>, ByName>,
}

impl Default for Stats {
    fn default() -> Self {
        static TABLES: AtomicU64 = AtomicU64::new(0);
        Stats {
            groups: HashMap::default(),
            words: Vec::new(),
            word_ids: HashMap::default(),
            id: TABLES.fetch_add(1, Ordering::Relaxed),
            config: StatsConfig::default(),
            text_readouts: Default::default(),
            deferred_creation: false,
        }
    }
}

/// Names come from config, not from clients: FNV-1a (see `common::fnv`).
type ByName = FnvBuildHasher;

/// A word's index in its table's `words`: 4 bytes in each slot where a shared
/// string would take 16 (with 10,000 clusters, ~6 MB).
type WordId = u32;

/// The stats whose names share everything up to their last dot.
#[derive(Debug, Default)]
struct Group {
    counters: Vec<(WordId, Arc<Counter>)>,
    gauges: Vec<(WordId, Arc<Gauge>)>,
    histograms: Vec<(WordId, Arc<Histogram>)>,
    /// Words not listed until the flag is set (`defer_until_used`).
    deferred: Option<(Arc<AtomicBool>, &'static [&'static str])>,
}

impl Group {
    /// Whether `word` is listed (not deferred, or used).
    fn lists(&self, word: &str) -> bool {
        self.deferred.as_ref().is_none_or(|(used, words)| used.load(Ordering::Relaxed) || !words.contains(&word))
    }
}

/// The words of one kind of a `define_stats!` struct, sorted once per process
/// (the macro keeps them in a static per struct), so that creating an instance's
/// stats neither looks its words up nor sorts them.
pub struct Words {
    given: &'static [&'static str],
    sorted: OnceLock<Option<Sorted>>,
    /// The sorted words' indexes in the table that last used them (by its `id`):
    /// the process's one store, but for tests.
    ids: Mutex<Option<(u64, Arc<[WordId]>)>>,
}

/// `words[k]` is `given[order[k]]`, in word order.
struct Sorted {
    words: Vec<Arc<str>>,
    order: Vec<usize>,
}

impl Words {
    pub const fn new(given: &'static [&'static str]) -> Words {
        Words { given, sorted: OnceLock::new(), ids: Mutex::new(None) }
    }

    /// `None` when the words are not plain (one holds a dot, or comes twice).
    fn sorted(&self) -> Option<&Sorted> {
        self.sorted
            .get_or_init(|| {
                let mut order: Vec<usize> = (0..self.given.len()).collect();
                order.sort_unstable_by_key(|&i| self.given[i]);
                let plain = self.given.iter().all(|w| !w.contains('.'))
                    && order.windows(2).all(|w| self.given[w[0]] != self.given[w[1]]);
                plain.then(|| Sorted { words: order.iter().map(|&i| Arc::from(self.given[i])).collect(), order })
            })
            .as_ref()
    }
}

/// Which of a group's vectors a kind of stat lives in.
trait Kind: Sized {
    fn slots(group: &Group) -> &Vec<(WordId, Arc<Self>)>;
    fn slots_mut(group: &mut Group) -> &mut Vec<(WordId, Arc<Self>)>;
    fn create() -> Self;
}

impl Kind for Counter {
    fn slots(g: &Group) -> &Vec<(WordId, Arc<Self>)> {
        &g.counters
    }
    fn slots_mut(g: &mut Group) -> &mut Vec<(WordId, Arc<Self>)> {
        &mut g.counters
    }
    fn create() -> Self {
        Counter::default()
    }
}

impl Kind for Gauge {
    fn slots(g: &Group) -> &Vec<(WordId, Arc<Self>)> {
        &g.gauges
    }
    fn slots_mut(g: &mut Group) -> &mut Vec<(WordId, Arc<Self>)> {
        &mut g.gauges
    }
    fn create() -> Self {
        Gauge::default()
    }
}

impl Kind for Histogram {
    fn slots(g: &Group) -> &Vec<(WordId, Arc<Self>)> {
        &g.histograms
    }
    fn slots_mut(g: &mut Group) -> &mut Vec<(WordId, Arc<Self>)> {
        &mut g.histograms
    }
    fn create() -> Self {
        Histogram::new()
    }
}

/// `prefix + rest` split after its last dot, as (group, word).
fn split<'a>(prefix: &'a str, rest: &'a str) -> (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>) {
    use std::borrow::Cow;
    if !rest.contains('.') && (prefix.is_empty() || prefix.ends_with('.')) {
        return (Cow::Borrowed(prefix), Cow::Borrowed(rest));
    }
    let full = format!("{prefix}{rest}");
    match full.rfind('.') {
        Some(dot) => (Cow::Owned(full[..=dot].to_string()), Cow::Owned(full[dot + 1..].to_string())),
        None => (Cow::Borrowed(""), Cow::Owned(full)),
    }
}

impl Stats {
    /// An empty table keeping and tagging stats as `config` says.
    pub fn with_config(config: StatsConfig) -> Stats {
        Stats { config, ..Stats::default() }
    }

    /// The `stats_config` this table follows.
    pub fn config(&self) -> &StatsConfig {
        &self.config
    }

    /// Sets `enable_deferred_creation_stats` (read by the components that defer).
    pub fn set_deferred_creation(&mut self, deferred: bool) {
        self.deferred_creation = deferred;
    }

    pub fn deferred_creation(&self) -> bool {
        self.deferred_creation
    }

    /// Leaves `prefix` + each of `words` unlisted until the returned flag is set
    /// (the same flag for the same prefix, so a replaced owner shares it).
    pub fn defer_until_used(&mut self, prefix: &str, words: &'static [&'static str]) -> Arc<AtomicBool> {
        let group = self.group(prefix);
        group.deferred.get_or_insert_with(|| (Arc::new(AtomicBool::new(false)), words)).0.clone()
    }

    /// The counter named `prefix` + `rest`, created at zero on first use.
    pub fn counter(&mut self, prefix: &str, rest: &str) -> Arc<Counter> {
        self.get_or_create(prefix, rest)
    }

    /// The gauge named `prefix` + `rest`, created at zero on first use.
    pub fn gauge(&mut self, prefix: &str, rest: &str) -> Arc<Gauge> {
        self.get_or_create(prefix, rest)
    }

    /// The histogram named `prefix` + `rest`, created empty on first use.
    pub fn histogram(&mut self, prefix: &str, rest: &str) -> Arc<Histogram> {
        self.get_or_create(prefix, rest)
    }

    /// The counters `prefix` + each of `words`, created at zero where new: a
    /// `define_stats!` struct's counters, in the order of `words`.
    pub fn counters_in(&mut self, prefix: &str, words: &Words) -> Vec<Arc<Counter>> {
        self.all_in(prefix, words)
    }

    /// The gauges `prefix` + each of `words` (see `counters_in`).
    pub fn gauges_in(&mut self, prefix: &str, words: &Words) -> Vec<Arc<Gauge>> {
        self.all_in(prefix, words)
    }

    /// The histograms `prefix` + each of `words` (see `counters_in`).
    pub fn histograms_in(&mut self, prefix: &str, words: &Words) -> Vec<Arc<Histogram>> {
        self.all_in(prefix, words)
    }

    /// Makes room for `groups` more groups (a component about to create that many
    /// instances' stats), so the table grows once.
    pub fn reserve_groups(&mut self, groups: usize) {
        self.groups.reserve(groups);
    }

    /// A new group is filled from the words sorted beforehand, sized to fit;
    /// anything else (a group that exists, names not split plainly) word by word.
    fn all_in<T: Kind>(&mut self, prefix: &str, words: &Words) -> Vec<Arc<T>> {
        // A stats matcher decides name by name.
        let plain_prefix = (prefix.is_empty() || prefix.ends_with('.')) && !self.config.matches_some();
        if let Some(sorted) = words.sorted().filter(|_| plain_prefix && !words.given.is_empty()) {
            let ids = self.word_ids_of(words, sorted);
            let slots = T::slots_mut(self.group(prefix));
            if slots.is_empty() {
                let stats: Vec<Arc<T>> = words.given.iter().map(|_| Arc::new(T::create())).collect();
                slots.reserve_exact(stats.len());
                // `order` is a permutation of the indices of `stats`.
                slots.extend(ids.iter().zip(&sorted.order).map(|(&w, &i)| (w, stats[i].clone())));
                return stats;
            }
            // A second component's stats in a group sized to fit the first's
            // (an xDS cluster's `update_*` beside its `upstream_*`): grown
            // exactly, not doubled, which cost ~2.5 KiB per cluster.
            slots.reserve_exact(words.given.len());
        }
        words.given.iter().map(|w| self.get_or_create(prefix, w)).collect()
    }

    /// The index of `word`, which is added if new.
    fn intern(&mut self, word: &str) -> WordId {
        if let Some(&id) = self.word_ids.get(word) {
            return id;
        }
        // Words are the stats' last name components: a few hundred kinds.
        let id = WordId::try_from(self.words.len()).unwrap_or(WordId::MAX);
        let w: Arc<str> = Arc::from(word);
        self.words.push(w.clone());
        self.word_ids.insert(w, id);
        id
    }

    /// The indexes of a struct's sorted words in this table, looked up once per
    /// table rather than once per instance.
    fn word_ids_of(&mut self, words: &Words, sorted: &Sorted) -> Arc<[WordId]> {
        let mut cached = words.ids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, ids)) = cached.as_ref().filter(|(table, _)| *table == self.id) {
            return ids.clone();
        }
        let ids: Arc<[WordId]> = sorted.words.iter().map(|w| self.intern(w)).collect();
        *cached = Some((self.id, ids.clone()));
        ids
    }

    /// The word of `id`.
    fn word(&self, id: WordId) -> &str {
        self.words.get(id as usize).map_or("", |w| w.as_ref())
    }

    /// The group named `group`, made empty if new.
    fn group(&mut self, group: &str) -> &mut Group {
        self.groups.entry(Arc::from(group)).or_default()
    }

    fn get_or_create<T: Kind>(&mut self, prefix: &str, rest: &str) -> Arc<T> {
        // A rejected stat still counts for its owner, but no one can list it, as
        // Envoy's null stats: decided here, once, never on the data path.
        if self.config.matches_some() && !self.config.keeps(&format!("{prefix}{rest}")) {
            return Arc::new(T::create());
        }
        let (group, word) = split(prefix, rest);
        let id = self.intern(&word);
        let words = &self.words;
        let slots = T::slots_mut(self.groups.entry(Arc::from(group.as_ref())).or_default());
        match slots.binary_search_by(|(w, _)| words[*w as usize].as_ref().cmp(&word)) {
            Ok(i) => slots[i].1.clone(),
            Err(i) => {
                let stat = Arc::new(T::create());
                slots.insert(i, (id, stat.clone()));
                stat
            }
        }
    }

    /// The text readout named `name`, created empty on first use (one the
    /// `stats_config` rejects is nobody's to list, as counters are).
    pub fn text_readout(&mut self, name: &str) -> Arc<TextReadout> {
        if self.config.matches_some() && !self.config.keeps(name) {
            return Arc::new(TextReadout::default());
        }
        let (group, word) = split("", name);
        let id = self.intern(&word);
        let group = match self.groups.get_key_value(group.as_ref()) {
            Some((shared, _)) => shared.clone(),
            None => Arc::from(group.as_ref()),
        };
        self.text_readouts.entry((group, id)).or_default().clone()
    }

    /// Every text readout with its name, in name order.
    pub fn text_readouts(&self) -> Vec<(String, &Arc<TextReadout>)> {
        let mut all: Vec<(String, &Arc<TextReadout>)> =
            self.text_readouts.iter().map(|((group, id), t)| (format!("{group}{}", self.word(*id)), t)).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Deletes every stat named `prefix` + a word without a dot (the stats of
    /// a `define_stats!` struct made with `prefix`), as Envoy deletes a
    /// scope's stats once nothing holds them: no longer listed, and made anew
    /// (at zero) if asked for again. Their owner must be gone (what it still
    /// holds counts for no one).
    pub fn remove_group(&mut self, prefix: &str) {
        self.groups.remove(prefix);
        self.text_readouts.retain(|(group, _), _| group.as_ref() != prefix);
    }

    /// The counter named `name`, if it exists.
    pub fn find_counter(&self, name: &str) -> Option<&Arc<Counter>> {
        self.find(name)
    }

    /// The gauge named `name`, if it exists.
    pub fn find_gauge(&self, name: &str) -> Option<&Arc<Gauge>> {
        self.find(name)
    }

    /// The histogram named `name`, if it exists.
    pub fn find_histogram(&self, name: &str) -> Option<&Arc<Histogram>> {
        self.find(name)
    }

    fn find<T: Kind>(&self, name: &str) -> Option<&Arc<T>> {
        let (group, word) = split("", name);
        let found = self.groups.get(group.as_ref()).filter(|g| g.lists(&word))?;
        let slots = T::slots(found);
        let i = slots.binary_search_by(|(w, _)| self.word(*w).cmp(&word)).ok()?;
        Some(&slots[i].1)
    }

    /// Every counter with its name, in name order.
    pub fn counters(&self) -> Vec<(String, &Arc<Counter>)> {
        self.sorted()
    }

    /// Every gauge with its name, in name order.
    pub fn gauges(&self) -> Vec<(String, &Arc<Gauge>)> {
        self.sorted()
    }

    /// Every histogram with its name, in name order.
    pub fn histograms(&self) -> Vec<(String, &Arc<Histogram>)> {
        self.sorted()
    }

    fn sorted<T: Kind>(&self) -> Vec<(String, &Arc<T>)> {
        let mut all: Vec<(String, &Arc<T>)> = self
            .groups
            .iter()
            .flat_map(|(group, g)| {
                T::slots(g)
                    .iter()
                    .map(|(id, stat)| (self.word(*id), stat))
                    .filter(|(word, _)| g.lists(word))
                    .map(move |(word, stat)| (format!("{group}{word}"), stat))
            })
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_one_stat_however_it_is_split() {
        let mut s = Stats::default();
        let a = s.counter("cluster.echo.", "upstream_rq_total");
        a.inc();
        for (prefix, rest) in [
            ("", "cluster.echo.upstream_rq_total"),
            ("cluster.", "echo.upstream_rq_total"),
            ("cluster.echo.upstream", "_rq_total"),
        ] {
            assert!(Arc::ptr_eq(&a, &s.counter(prefix, rest)), "{prefix} + {rest}");
        }
        assert_eq!(s.find_counter("cluster.echo.upstream_rq_total").map(|c| c.value()), Some(1));
        assert!(s.find_counter("cluster.echo.upstream_rq").is_none());
        assert!(s.find_gauge("cluster.echo.upstream_rq_total").is_none(), "kinds are apart");
        s.gauge("", "live");
        assert!(s.find_gauge("live").is_some());
    }

    #[test]
    fn listed_in_name_order() {
        let mut s = Stats::default();
        for name in ["cluster.a.x", "cluster.a.b.y", "cluster.a_b.z", "server.live", "cluster.a.a", "c"] {
            s.counter("", name);
        }
        let names: Vec<String> = s.counters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["c", "cluster.a.a", "cluster.a.b.y", "cluster.a.x", "cluster.a_b.z", "server.live"]);
    }

    #[test]
    fn struct_words_fill_a_new_group_in_word_order() {
        static WORDS: Words = Words::new(&["rq_total", "cx_active", "b"]);
        let mut s = Stats::default();
        let made = s.counters_in("cluster.x.", &WORDS);
        made[0].add(7);
        assert_eq!(s.find_counter("cluster.x.rq_total").map(|c| c.value()), Some(7));
        let names: Vec<String> = s.counters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["cluster.x.b", "cluster.x.cx_active", "cluster.x.rq_total"]);
        // The same prefix again: the same stats.
        let again = s.counters_in("cluster.x.", &WORDS);
        assert!(made.iter().zip(&again).all(|(a, b)| Arc::ptr_eq(a, b)));
        // Words with a dot, or given twice, go word by word.
        static ODD: Words = Words::new(&["a.b", "c", "c"]);
        let odd = s.counters_in("p.", &ODD);
        assert!(Arc::ptr_eq(&odd[1], &odd[2]));
        assert!(s.find_counter("p.a.b").is_some() && s.find_counter("p.c").is_some());
    }

    #[test]
    fn deferred_words_are_listed_once_used() {
        let mut s = Stats::default();
        let total = s.counter("cluster.x.", "upstream_rq_total");
        s.counter("cluster.x.", "membership_change");
        let used = s.defer_until_used("cluster.x.", &["upstream_rq_total"]);
        let names = |s: &Stats| s.counters().into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(&s), ["cluster.x.membership_change"]);
        assert!(s.find_counter("cluster.x.upstream_rq_total").is_none());
        assert!(Arc::ptr_eq(&used, &s.defer_until_used("cluster.x.", &["upstream_rq_total"])));
        total.inc();
        used.store(true, Ordering::Relaxed);
        assert_eq!(names(&s), ["cluster.x.membership_change", "cluster.x.upstream_rq_total"]);
        assert_eq!(s.find_counter("cluster.x.upstream_rq_total").map(|c| c.value()), Some(1));
    }

    #[test]
    fn text_readouts_are_listed_by_name_and_a_group_is_deleted_whole() {
        let mut s = Stats::default();
        s.counter("http.in.rds.r.", "update_success").inc();
        s.text_readout("http.in.rds.r.version_text").set("v1");
        s.text_readout("http.in.rds.r.b.version_text").set("v2");
        s.text_readout("a.version_text");
        let texts =
            |s: &Stats| s.text_readouts().into_iter().map(|(n, t)| format!("{n}={}", t.value())).collect::<Vec<_>>();
        assert_eq!(texts(&s), ["a.version_text=", "http.in.rds.r.b.version_text=v2", "http.in.rds.r.version_text=v1"]);
        s.remove_group("http.in.rds.r.");
        assert!(s.find_counter("http.in.rds.r.update_success").is_none());
        assert_eq!(texts(&s), ["a.version_text=", "http.in.rds.r.b.version_text=v2"], "another group stays");
        // Asked for again: anew.
        assert_eq!(s.counter("http.in.rds.r.", "update_success").value(), 0);
        assert_eq!(s.text_readout("http.in.rds.r.version_text").value(), "");
    }

    #[test]
    fn groups_share_words() {
        let mut s = Stats::default();
        for i in 0..100 {
            s.counter(&format!("cluster.c{i}."), "upstream_rq_total");
        }
        assert_eq!(s.words.len(), 1);
        assert_eq!(s.groups.len(), 100);
    }
}
