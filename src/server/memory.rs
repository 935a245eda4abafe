//! Process memory figures for `server.memory_*` (glibc malloc statistics and RSS),
//! and giving memory freed after start-up back to the system.

/// Bytes, as Envoy's `server.memory_allocated`, `memory_heap_size`, `memory_physical_size`.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryUsage {
    pub allocated: u64,
    pub heap_size: u64,
    pub physical: u64,
}

pub fn usage() -> MemoryUsage {
    let mut m = MemoryUsage { physical: rss_bytes().unwrap_or(0), ..Default::default() };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        m.allocated = (info.uordblks + info.hblkhd) as u64;
        m.heap_size = (info.arena + info.hblkhd) as u64;
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

/// Unmaps the pages of Courier's own executable that are read-only (code and
/// constants), so that only what runs after start-up faults back in. Start-up runs
/// a lot of code once (YAML, JSON, the schema, validation: megabytes of text) and
/// every page it touched would stay counted as resident. The pages are clean copies
/// of the file: dropping them loses nothing, and a page used again is mapped back
/// from the page cache on its next access (a minor fault). Writable segments
/// (data, relocated pointers) are left alone.
pub fn release_startup_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: the callback reads the program headers the loader hands it, and
    // advises only whole pages inside the executable's non-writable segments.
    unsafe {
        libc::dl_iterate_phdr(Some(drop_read_only_segments), std::ptr::null_mut());
    }
}

/// `dl_iterate_phdr` callback: acts on the first object (the executable) and stops.
#[cfg(target_os = "linux")]
unsafe extern "C" fn drop_read_only_segments(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    _data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid `dl_phdr_info` whose `dlpi_phdr` points at
    // `dlpi_phnum` program headers.
    let (base, headers) = unsafe {
        let info = &*info;
        (info.dlpi_addr as usize, std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)))
    };
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
    for h in headers.iter().filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W == 0) {
        let start = base + h.p_vaddr as usize;
        let end = start + h.p_memsz as usize;
        // Whole pages only: a page shared with a writable segment stays.
        let (first, last) = (start.div_ceil(page) * page, end / page * page);
        if first < last {
            // SAFETY: [first, last) lies in a read-only, file-backed segment of this
            // executable; MADV_DONTNEED only drops its clean pages from the page tables.
            unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_DONTNEED) };
        }
    }
    1
}
