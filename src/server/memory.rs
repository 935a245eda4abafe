//! Process memory figures for `server.memory_*` and `/memory` (glibc malloc
//! statistics and RSS),
//! and giving memory freed after start-up back to the system.

/// Bytes, as Envoy's `server.memory_allocated`, `memory_heap_size`, `memory_physical_size`.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryUsage {
    pub allocated: u64,
    pub heap_size: u64,
    pub physical: u64,
    /// Free bytes the allocator holds in its heaps (`/memory`'s `pageheap_free`).
    pub heap_free: u64,
}

pub fn usage() -> MemoryUsage {
    let mut m = MemoryUsage { physical: rss_bytes().unwrap_or(0), ..Default::default() };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        m.allocated = (info.uordblks + info.hblkhd) as u64;
        m.heap_size = (info.arena + info.hblkhd) as u64;
        m.heap_free = info.fordblks as u64;
    }
    m
}

/// Resident set size from /proc/self/statm.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

/// Returns the allocator's free pages to the system. glibc keeps freed memory in
/// its heaps for reuse and gives back only what lies above the last allocation;
/// after start-up (config text, JSON trees, the schema: megabytes, freed at once)
/// most of it is below, so it would stay resident for good.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
